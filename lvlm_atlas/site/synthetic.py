"""Seeded synthetic catalogs for scale benchmarks and tests: valid paper files spread over the real
taxonomy, with realistic field sizes (authors, summary, a ~150-word abstract)."""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import yaml

from lvlm_atlas.catalog.taxonomy import Taxonomy

SCHEMA_LINE = "# yaml-language-server: $schema=../schema/paper.schema.json\n"
VENUES = ["CVPR", "ICCV", "ECCV", "NeurIPS", "ICLR", "ICML", "AAAI", "ACL", "EMNLP", "TPAMI", None]
WORDS = ("token visual pruning merging cache attention layer decoding prefilling encoder frame video image "
         "budget latency memory throughput sparse draft verify quantise adapter resolution streaming "
         "redundancy importance score saliency head query projector language model efficient inference").split()


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _pseudo_word(rng: random.Random) -> str:
    """A made-up word (titles of real papers are diverse; the validator's near-duplicate check relies on it)."""
    syllables = ["ka", "lo", "mi", "ren", "tor", "vex", "qui", "zan", "pel", "dru", "sho", "nim", "gar", "ul", "bri"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(3, 5)))


def paper_data(i: int, rng: random.Random, tax: Taxonomy) -> dict:
    leaves = [n.id for n in tax.nodes if n.view == "stage" and n.stage and not tax.children(n.id, "stage")]
    year = rng.randint(2019, 2025)   # a complete past year: no date may lie in the future
    month = rng.randint(1, 12)
    venue = rng.choice(VENUES)
    facets = {f: [t.id for t in tax.facets[f]] for f in ("bottleneck", "granularity", "modality", "scenario")}
    placements = [{"node": rng.choice(leaves), "primary": True}]
    extra = rng.choice(leaves)
    if extra != placements[0]["node"] and rng.random() < 0.3:
        placements.append({"node": extra})
        ruled = ("encoding", "prefilling", "decoding")   # the catalog's rule: primary on the earliest stage
        first, second = (tax.node_by_id[p["node"]].stage for p in placements)
        if first in ruled and second in ruled and ruled.index(second) < ruled.index(first):
            placements = [{"node": extra, "primary": True}, {"node": placements[0]["node"]}]
    data = {
        "id": f"synthetic-{i:05d}",
        "name": f"{_pseudo_word(rng).capitalize()}{i}"[:60],
        "title": f"{_pseudo_word(rng).capitalize()}: " + " ".join(_pseudo_word(rng) for _ in range(3)) + " "
                 + _sentence(rng, 6)[:-1].lower() + " for vision-language models",
        "authors": [f"Author {rng.randint(1, 5000)} Person{j}" for j in range(rng.randint(2, 9))],
        "year": year,
        "date": f"{year}-{month:02d}-{rng.randint(1, 28):02d}",
        "venue": f"{venue} {year}" if venue else None,
        "status": "published" if venue else "preprint",
        "kind": "method",
        "links": {"paper": f"https://example.org/papers/{i}",
                  "code": [{"url": f"https://github.com/example/synth{i}", "official": True}] if rng.random() < 0.6 else []},
        "placements": placements,
        "bottleneck": rng.sample(facets["bottleneck"], rng.randint(1, 2)),
        "granularity": rng.sample(facets["granularity"], 1),
        "modality": rng.sample(facets["modality"], rng.randint(1, 2)),
        "scenario": rng.sample(facets["scenario"], 1),
        "training_free": rng.random() < 0.6,
        "summary": _sentence(rng, 20),
        "abstract": " ".join(_sentence(rng, rng.randint(12, 25)) for _ in range(8)),
        "added": (dt.date(year, month, 28) + dt.timedelta(days=rng.randint(0, 300))).isoformat(),
    }
    return data


def write_synthetic_catalog(papers_dir: Path, n: int, tax: Taxonomy, seed: int = 0) -> None:
    rng = random.Random(seed)
    papers_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        data = paper_data(i, rng, tax)
        (papers_dir / f"{data['id']}.yaml").write_text(SCHEMA_LINE + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

"""Build small, valid catalogs in temporary directories for tests and benchmarks."""
from __future__ import annotations

import random
from pathlib import Path

import yaml

from lvlm_atlas.catalog.validate import SCHEMA_COMMENT

BASE = {
    "id": "example-method",
    "name": "ExampleMethod",
    "title": "Example Method: Pruning Visual Tokens for Testing",
    "authors": ["Ada Lovelace", "Alan Turing"],
    "year": 2024,
    "date": "2024-03-11",
    "venue": "ECCV 2024",
    "status": "published",
    "kind": "method",
    "identifiers": {"arxiv": "2403.00001"},
    "links": {"paper": "https://arxiv.org/abs/2403.00001",
              "code": [{"url": "https://github.com/example/example", "official": True}]},
    "placements": [{"node": "prefilling/token-compression/attention-guided", "primary": True}],
    "bottleneck": ["compute"],
    "granularity": ["token"],
    "modality": ["image"],
    "scenario": ["static"],
    "training_free": True,
    "summary": "Drops the visual tokens that receive the least attention after an early layer.",
    "added": "2026-11-21",
}


_WORDS = ("adaptive sparse visual token pruning merging cache eviction budget streaming video frame keyframe "
          "resolution encoder adapter projector speculative draft verify decoding prefill attention head layer "
          "quantized memory bandwidth latency throughput serving disaggregated scheduler diversity saliency "
          "temporal spatial hierarchical progressive dynamic lightweight holistic query guided aware free").split()


_SYLLABLES = "ka lo mi ve ra to su ne zi pa qu do fe lu ri mo sa ti ga be".split()


def synthetic_name(i: int) -> str:
    """A made-up method name, unique per i (like real papers' FastV, SparseVLM, ...)."""
    parts, n = [], i
    while True:
        parts.append(_SYLLABLES[n % len(_SYLLABLES)])
        n //= len(_SYLLABLES)
        if not n:
            break
    return "".join(parts).title() + "VLM"


def synthetic_title(i: int) -> str:
    """A plausible, distinct title for synthetic paper i (deterministic)."""
    rng = random.Random(i)
    words = rng.sample(_WORDS, 6)
    return f"{synthetic_name(i)}: {words[0]} {' '.join(words[1:])} for vision-language models"


def paper_dict(i: int = 0, **overrides) -> dict:
    d = yaml.safe_load(yaml.safe_dump(BASE))  # deep copy
    if i:
        d["id"] = f"example-method-{i}"
        d["name"] = f"Example{i}"
        d["title"] = synthetic_title(i)
        d["identifiers"] = {"arxiv": f"24{(i % 12) + 1:02d}.{i:05d}"}
        d["date"] = f"2024-{(i % 12) + 1:02d}-01"
        d["links"]["paper"] = f"https://arxiv.org/abs/24{(i % 12) + 1:02d}.{i:05d}"
    d.update(overrides)
    return d


def write_paper(papers_dir: Path, data: dict | str, name: str | None = None) -> Path:
    papers_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(data, dict):
        text = SCHEMA_COMMENT + "\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        name = name or f"{data['id']}.yaml"
    else:
        text = data
    path = papers_dir / name
    path.write_text(text, encoding="utf-8")
    return path


def make_catalog(papers_dir: Path, n: int) -> Path:
    for i in range(1, n + 1):
        write_paper(papers_dir, paper_dict(i))
    return papers_dir

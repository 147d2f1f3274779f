"""Shared helpers for the website tests: a small catalog in a temporary folder (ordinary entries, one
runnable method with a card and measured results, and hostile entries), generated and built with
MkDocs once per test session."""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from lvlm_atlas import paths
from lvlm_atlas.catalog.loader import Catalog
from lvlm_atlas.catalog.taxonomy import load_taxonomy
from lvlm_atlas.catalog.results import load_results
from lvlm_atlas.catalog.validate import validate_catalog
from tests.catalog_factory import paper_dict

SCHEMA_LINE = "# yaml-language-server: $schema=../schema/paper.schema.json\n"

XSS_SCRIPT = "<script>alert('xss-title')</script>"
XSS_IMG = "<img src=x onerror=alert('xss-img')>"
XSS_MD_LINK = "[click me](javascript:alert('xss-md'))"
XSS_TEMPLATE = "{{ 7*7 }} {% if true %}tpl{% endif %}"
XSS_ATTR_LIST = '{: onclick="alert(\'xss-attr\')" }'
QUOTE_URL = 'https://example.org/a"><script>alert(1)</script>'


def base_paper(pid: str, **over) -> dict:
    """The validator tests' example entry (tests/catalog_factory.BASE) renamed to `pid`, without an arXiv id."""
    d = paper_dict()
    del d["identifiers"]
    d.update(
        id=pid,
        name=pid.replace("-", " ").title().replace(" ", "")[:60],
        title=f"A study of {pid.replace('-', ' ')} for efficient vision-language inference",
        links={"paper": f"https://example.org/{pid}",
               "code": [{"url": f"https://github.com/example/{pid}", "official": True}]},
        scenario=["static"],
        summary=f"Keeps the visual tokens that matter most for {pid}.",
        added="2026-11-01",
    )
    d.update(over)
    return d


def hostile_paper() -> dict:
    return base_paper(
        "hostile-entry",
        name="<img src=x onerror=alert('xss-name')>"[:60],
        title=f"{XSS_SCRIPT} {XSS_TEMPLATE} {XSS_MD_LINK} # heading",
        authors=[XSS_IMG, "[Eve](javascript:alert('xss-author'))", "<b onmouseover=alert('xss-b')>Mallory</b>"],
        venue="<svg onload=alert('xss-venue')> 2025",
        year=2025, date="2025-02-03", added="2026-11-20",
        summary=f"{XSS_MD_LINK} <iframe src=javascript:alert('xss-iframe')></iframe> {XSS_ATTR_LIST}",
        abstract=(f"1. {XSS_SCRIPT}\n\n- {XSS_IMG}\n\n![x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"
                  f"\n\n{XSS_ATTR_LIST}\n\n<a href=\"javascript:alert('xss-a')\">a</a> {XSS_TEMPLATE}\n---\n# not a heading"),
        comment="<style>body{display:none}</style> | table | break",
        journal_ref="`code` **bold** _it_ <!-- comment -->",
        links={"paper": "https://example.org/hostile", "project": QUOTE_URL,
               "code": [{"url": "https://github.com/example/hostile?a=1&b=<x>", "official": False}]},
        placements=[{"node": "decoding/kv-cache-compression/token-level", "primary": True}],
        modality=["video"],
    )


def catalog_entries() -> list[dict]:
    return [
        base_paper("fastprune", summary="Drops the zebra tokens after layer two.", method="fastprune"),
        base_paper("mergeall", placements=[{"node": "prefilling/token-compression/diversity-guided", "primary": True}],
                   year=2025, date="2025-01-20", venue=None, status="preprint", training_free=False,
                   links={"paper": "https://example.org/mergeall"}, builds_on=["fastprune"], added="2026-11-10",
                   abstract="First paragraph of the abstract.\n\nSecond paragraph."),
        base_paper("framepick", summary="Selects zebra frames before encoding.",
                   placements=[{"node": "encoding/keyframe-selection/training-free", "primary": True},
                               {"node": "prefilling/token-compression/attention-guided"}],
                   modality=["video"], granularity=["frame"], year=2023, date="2023-06-01", venue="NeurIPS 2023",
                   identifiers={"arxiv": "2306.00001", "doi": "10.1234/abc\"<x>"}),
        base_paper("kvsqueeze", placements=[{"node": "decoding/kv-cache-compression/bit-level", "primary": True}],
                   bottleneck=["memory-capacity", "memory-bandwidth"], granularity=["bit"], added="2026-11-15"),
        base_paper("bench-suite", kind="benchmark", training_free=None,
                   placements=[{"node": "resources/benchmarks/image", "primary": True}], bottleneck=[], granularity=[]),
        hostile_paper(),
    ]


CARD = {
    "name": "fastprune", "label": "FastPrune <script>alert('xss-card')</script>", "paper": "fastprune",
    "stage": "in_llm", "signal": "attention of the last token", "summary": "drop tokens {{ 1+1 }}",
    "attention_backends": ["sdpa", "eager"], "batch": "1", "models": ["llava"],
    "parameters": [{"name": "k", "type": "int", "default": 2, "description": "layer <b>after</b> which tokens go"}],
    "claims": [{"model": "LLaVA-1.5-7B", "benchmark": "GQA", "metric": "accuracy", "value": 60.1, "baseline": 61.9,
                "setting": "64 tokens"}],
    "notes": "none",
}
# Reported results of the test catalog: two papers' tables on LLaVA-1.5-7B (one re-runs the other as a baseline)
RESULTS = {
    "mergeall": {
        "paper": "mergeall", "version": "arXiv v2", "url": "https://arxiv.org/abs/2501.00001v2",
        "note": "POPE: F1 <script>alert('xss-results')</script>",
        "tables": [{"source": "Table 1", "model": "llava-1.5-7b", "rows": [
            {"method": "unpruned", "role": "unpruned", "setting": {"visual_tokens": 576},
             "scores": {"gqa": 61.9, "mme": 1862, "pope": 85.9}},
            {"method": "mergeall", "role": "own", "setting": {"visual_tokens": 64},
             "scores": {"gqa": 57.5, "mme": 1690, "pope": 80.1}},
            {"method": "mergeall", "role": "own", "setting": {"visual_tokens": 128},
             "scores": {"gqa": 59.3, "mme": 1760, "pope": 84.0}},
            {"method": "fastprune", "role": "baseline", "setting": {"visual_tokens": 64},
             "scores": {"gqa": 46.1, "mme": 1256, "pope": 59.6}},
        ]}],
    },
    "fastprune": {
        "paper": "fastprune", "version": "arXiv v1", "url": "https://arxiv.org/abs/2403.00001",
        "tables": [{"source": "Table 2", "model": "llava-1.5-7b", "rows": [
            {"method": "unpruned", "role": "unpruned", "setting": {"visual_tokens": 576},
             "scores": {"gqa": 62.0, "mme": 1850, "pope": 86.0}},
            {"method": "fastprune", "role": "own", "setting": {"visual_tokens": 64},
             "variant": "<b>v2</b>", "scores": {"gqa": 49.6, "mme": 1310, "pope": 62.3}},
        ]}],
    },
}
RESULTS["hostile-entry"] = {
    "paper": "hostile-entry", "version": XSS_TEMPLATE, "url": "https://example.org/x?a=<b>&c=\"d\"",
    "note": XSS_SCRIPT,
    "tables": [{"source": "Table 9", "model": "llava-1.5-7b", "rows": [
        {"method": "hostile-entry", "role": "own", "variant": XSS_SCRIPT, "hardware": "VQA|v2 " + XSS_TEMPLATE,
         "setting": {"visual_tokens": 32}, "scores": {"vqav2": 1.5}}]}],
}
BENCH = {
    "schema": 1,
    "provenance": {"device": "cpu <script>", "torch": "2.13.0", "transformers": "5.0", "attention_backend": "sdpa",
                   "git_commit": "abc123", "date": "2026-11-21", "host": "test", "command": "atlas bench"},
    "results": [{"method": "fastprune", "model": "tiny-llava", "params": {"k": 2}, "budget": 64,
                 "visual_tokens_before": 576, "visual_tokens_after": 64, "ttft_ms": 12.5, "tpot_ms": 3.25,
                 "peak_memory_bytes": 1048576, "greedy_match": True, "repeats": 3}],
}


@dataclass
class SiteTree:
    root: Path          # the temporary repository-like folder
    catalog: Catalog
    docs: Path          # generated Markdown (docs_dir)
    site: Path          # built HTML (after mkdocs_build)


def write_tree(root: Path, entries: list[dict], with_card: bool = True) -> Catalog:
    papers = root / "catalog" / "papers"
    papers.mkdir(parents=True, exist_ok=True)
    for e in entries:
        (papers / f"{e['id']}.yaml").write_text(SCHEMA_LINE + yaml.safe_dump(e, sort_keys=False, allow_unicode=True),
                                               encoding="utf-8")
    cards = root / "methods" / "cards"
    cards.mkdir(parents=True, exist_ok=True)
    if with_card:
        (cards / "fastprune.yaml").write_text(yaml.safe_dump(CARD, sort_keys=False), encoding="utf-8")
        bench = root / "catalog" / "benchmarks"
        bench.mkdir(parents=True, exist_ok=True)
        (bench / "fastprune-cpu.json").write_text(json.dumps(BENCH), encoding="utf-8")
    results_dir = root / "catalog" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(paths.CATALOG / "results-vocab.yaml", root / "catalog" / "results-vocab.yaml")
    ids = {e["id"] for e in entries}
    for pid, doc in RESULTS.items():
        methods = {r["method"] for tb in doc["tables"] for r in tb["rows"]} - {"unpruned"}
        if pid in ids and methods <= ids:
            (results_dir / f"{pid}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tax = load_taxonomy()
    report = validate_catalog(papers, tax, cards_dir=root / "methods" / "cards")
    assert not report.problems, "\n".join(str(p) for p in report.problems)
    results, problems = load_results(results_dir, {p.id for p in report.papers})
    assert not problems, problems
    return Catalog(papers=sorted(report.papers, key=lambda p: p.id), taxonomy=tax, root=root / "catalog",
                   results=results)


def generate(root: Path, catalog: Catalog, out: Path | None = None, data_root: Path | None = None) -> Path:
    """Generate the docs folder; method cards and benchmarks are read from `data_root` (default: root)."""
    from lvlm_atlas.site import build_site

    out = out or root / "build" / "docs"
    data_root = data_root or root
    build_site(catalog, out, repo_root=paths.ROOT, cards_dir=data_root / "methods" / "cards",
               bench_dir=data_root / "catalog" / "benchmarks", site_url=None)
    return out


def mkdocs_build(root: Path, docs: Path) -> Path:
    """`mkdocs build --strict` with the repository's mkdocs.yml pointed at a generated docs folder."""
    from lvlm_atlas.site.mkdocs_config import write_repo_mkdocs_config

    cfg_path = write_repo_mkdocs_config(root / "mkdocs.yml", docs, root / "site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    # no -q: it silences warnings before --strict can count them, so a strict build could never fail
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(cfg_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return root / "site"


@functools.lru_cache(maxsize=1)
def built_site() -> SiteTree:
    """The test catalog generated and built once per session (read-only for tests)."""
    root = Path(tempfile.mkdtemp(prefix="atlas-site-test-"))
    atexit.register(shutil.rmtree, root, True)
    catalog = write_tree(root, catalog_entries())
    docs = generate(root, catalog)
    site = mkdocs_build(root, docs)
    return SiteTree(root=root, catalog=catalog, docs=docs, site=site)

"""Small in-memory catalogs for the enrichment and graph tests (no files needed)."""
from __future__ import annotations

from lvlm_atlas.catalog.loader import Catalog
from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.taxonomy import load_taxonomy

_TAX = load_taxonomy()

STAGE_NODES = {
    "encoding": "encoding/vision-encoders",
    "prefilling": "prefilling/token-compression/attention-guided",
}


def paper(pid: str, *, arxiv: str | None = None, doi: str | None = None, status: str = "preprint",
          node: str = "prefilling/token-compression/attention-guided", builds_on: tuple = (),
          year: int = 2024, kind: str = "method", **extra) -> Paper:
    ids = {k: v for k, v in (("arxiv", arxiv), ("doi", doi)) if v}
    date = f"20{arxiv[:2]}-{arxiv[2:4]}-01" if arxiv else f"{year}-01-01"
    data = {
        "id": pid, "name": pid.upper()[:20], "title": f"The {pid} paper about visual tokens",
        "authors": ["Ada Lovelace"], "year": year, "date": date,
        "venue": f"CVPR {year}" if status == "published" else None, "status": status, "kind": kind,
        "identifiers": ids, "links": {"paper": f"https://example.org/{pid}"},
        "placements": [{"node": node, "primary": True}], "modality": ["image"], "scenario": ["static"],
        "training_free": True if kind == "method" else None,
        "summary": "A test paper used by the graph tests.", "added": "2026-11-21",
        "builds_on": list(builds_on),
    }
    data.update(extra)
    return Paper.model_validate(data, context={"taxonomy": _TAX})


def catalog(*papers: Paper) -> Catalog:
    return Catalog(papers=sorted(papers, key=lambda p: p.id), taxonomy=_TAX)

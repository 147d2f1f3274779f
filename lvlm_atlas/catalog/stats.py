"""Counts of the catalog per stage, category, facet, kind and year."""
from __future__ import annotations

from collections import Counter

from lvlm_atlas.catalog.loader import Catalog
from lvlm_atlas.catalog.taxonomy import FACETS


def catalog_stats(catalog: Catalog) -> dict:
    tax = catalog.taxonomy
    papers = catalog.papers
    stages = Counter(s for p in papers for s in p.stages(tax) or ["(resources)"])
    categories = Counter()
    for p in papers:
        nodes = {p_.node for p_ in p.placements}
        nodes |= {a.id for n in list(nodes) for a in tax.ancestors(n)}
        nodes |= set(p.dimension_nodes(tax))
        nodes |= {a.id for n in p.dimension_nodes(tax) for a in tax.ancestors(n)}
        categories.update(nodes)
    facets = {f: Counter(t for p in papers for t in ([p.kind] if f == "kind" else getattr(p, f))) for f in FACETS}
    facets["training_free"] = Counter({True: "yes", False: "no", None: "n/a"}[p.training_free] for p in papers)
    return {
        "papers": len(papers),
        "stages": dict(sorted(stages.items())),
        "categories": {n.id: categories.get(n.id, 0) for n in tax.nodes},
        "facets": {f: dict(sorted(c.items())) for f, c in facets.items()},
        "years": dict(sorted(Counter(p.year for p in papers).items())),
        "venues": dict(sorted(Counter((p.venue or "preprint") for p in papers).items())),
        "with_code": sum(1 for p in papers if p.links.code),
        "runnable": sum(1 for p in papers if p.method),
        "candidates": sum(1 for p in papers if p.candidate),
    }


def format_stats(stats: dict, catalog: Catalog) -> str:
    tax = catalog.taxonomy
    lines = [f"papers: {stats['papers']}  (with code: {stats['with_code']}, runnable: {stats['runnable']}, "
             f"candidates: {stats['candidates']})", "", "per stage:"]
    lines += [f"  {k:<24}{v:>6}" for k, v in stats["stages"].items()]
    for view in ("stage", "dimensions"):
        lines += ["", f"per category ({view} view):"]
        lines += [f"  {'  ' * n.depth}{n.label:<{52 - 2 * n.depth}}{stats['categories'][n.id]:>6}"
                  for n in tax.nodes if n.view == view]
    for facet, counts in stats["facets"].items():
        lines += ["", f"per {facet}:"] + [f"  {str(k):<24}{v:>6}" for k, v in counts.items()]
    lines += ["", "per year:"] + [f"  {k:<24}{v:>6}" for k, v in stats["years"].items()]
    return "\n".join(lines) + "\n"

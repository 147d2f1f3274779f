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
        "completeness": completeness(catalog),
    }


def _is_token_compression(node: str) -> bool:
    return "/token-compression" in node


def completeness(catalog: Catalog) -> dict:
    """What the catalog still lacks: first-version dates without a day, methods without `training_free`,
    and how many token-compression and KV-cache papers carry paper-reported results (catalog/results/)."""
    papers = catalog.papers
    with_arxiv = [p for p in papers if p.identifiers.arxiv]
    reported = {f.paper for f in catalog.results}
    token = {p.id for p in papers if any(_is_token_compression(pl.node) for pl in p.placements)}
    kv = {p.id for p in papers if p.id not in token
          and any(pl.node.startswith("decoding/kv-cache-compression") for pl in p.placements)}
    return {
        "arxiv_papers": len(with_arxiv),
        "arxiv_month_only_dates": sorted(p.id for p in with_arxiv if len(p.date) != 10),
        "methods_without_training_free": sorted(p.id for p in papers if p.kind == "method" and p.training_free is None),
        "results_files": len(catalog.results),
        "results_rows": sum(len(t.rows) for f in catalog.results for t in f.tables),
        "results_token_compression_papers": len(reported & token),
        "results_kv_cache_papers": len(reported & kv),
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
    c = stats["completeness"]
    month_only, no_tf = c["arxiv_month_only_dates"], c["methods_without_training_free"]
    lines += ["", "completeness:",
              f"  papers with an arXiv id whose first-version date has no day: {len(month_only)} of {c['arxiv_papers']}"
              + (f" (e.g. {', '.join(month_only[:5])})" if month_only else ""),
              f"  methods without training_free: {len(no_tf)}" + (f" ({', '.join(no_tf[:5])})" if no_tf else ""),
              f"  paper-reported results: {c['results_files']} files, {c['results_rows']} rows; "
              f"token-compression papers {c['results_token_compression_papers']}, "
              f"KV-cache papers (no token-compression placement) {c['results_kv_cache_papers']}"]
    return "\n".join(lines) + "\n"

"""Citation-graph analytics: PageRank, degrees, components, stages, lineage, related papers."""
from __future__ import annotations

import sys

from lvlm_atlas.catalog.loader import CatalogError, load_catalog
from lvlm_atlas.enrich.store import StoreError, load_store
from lvlm_atlas.graph.citations import build_graph, summary_lines


def add_arguments(parser) -> None:
    parser.add_argument("--top", type=int, default=10, help="rows in each ranking (default 10)")
    parser.add_argument("--paper", metavar="ID", help="show one paper's neighbourhood instead of the summary")


def run(args) -> int:
    try:
        catalog = load_catalog()
        store = load_store()
    except (CatalogError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cg = build_graph(catalog, store)
    if not args.paper:
        for line in summary_lines(cg, catalog, args.top):
            print(line)
        if len(cg.enriched) < len(catalog):
            print(f"note: {len(catalog) - len(cg.enriched)} papers have no Semantic Scholar reference data yet; "
                  "run `atlas enrich` (needs network access) to add citation edges")
        return 0
    if args.paper not in catalog.by_id:
        print(f"error: no paper with id {args.paper!r} in the catalog", file=sys.stderr)
        return 1
    pid = args.paper
    print(f"{pid}: {catalog.by_id[pid].title}")
    print(f"cites in the catalog: {', '.join(cg.cites(pid)) or '-'}")
    print(f"cited by in the catalog: {', '.join(cg.cited_by(pid)) or '-'}")
    print(f"lineage (builds_on): {' -> '.join(cg.lineage(pid))}")
    print(f"everything that builds on or cites it: {', '.join(cg.descendants(pid)) or '-'}")
    print("related (co-citations, shared references):")
    for other, cc, bc in cg.related(pid, args.top):
        print(f"  {other}  ({cc}, {bc})")
    return 0

"""Validate the catalog (schema, vocabularies, duplicates, YAML hazards); exit 1 on any problem."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from lvlm_atlas import paths
from lvlm_atlas.catalog.results import load_results
from lvlm_atlas.catalog.taxonomy import load_taxonomy
from lvlm_atlas.catalog.validate import validate_catalog


def add_arguments(parser) -> None:
    parser.add_argument("--papers", type=Path, default=paths.PAPERS, help="directory of paper files (default: catalog/papers)")
    parser.add_argument("--taxonomy", type=Path, default=paths.TAXONOMY, help="taxonomy file (default: catalog/taxonomy.yaml)")
    parser.add_argument("--quiet", action="store_true", help="print problems only, no summary line")


def run(args) -> int:
    try:
        tax = load_taxonomy(args.taxonomy)
    except (OSError, ValueError, KeyError) as exc:
        print(f"{args.taxonomy}:1:1: cannot load the taxonomy: {exc}", file=sys.stderr)
        return 1
    report = validate_catalog(args.papers, tax)
    results, result_problems = load_results(args.papers.parent / "results", {p.id for p in report.papers})
    annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    for problem in report.problems:
        print(problem)
        if annotate:
            print(problem.github_annotation())
    for problem in result_problems:
        print(problem)
    ok = report.ok and not result_problems
    if not args.quiet:
        n_problems = len(report.problems) + len(result_problems)
        state = "OK" if ok else f"{n_problems} problem(s)"
        rows = sum(len(t.rows) for f in results for t in f.tables)
        print(f"validated {report.files} file(s), {len(report.papers)} valid paper(s), "
              f"{len(results)} results file(s) with {rows} row(s): {state}",
              file=sys.stderr if ok else sys.stdout)
    return 0 if ok else 1

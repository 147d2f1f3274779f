"""Print counts per stage, category, facet and year (add --json for machine-readable output)."""
from __future__ import annotations

import json
import sys

from lvlm_atlas.cli._catalog import catalog_or_report
from lvlm_atlas.catalog.stats import catalog_stats, format_stats


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    catalog = catalog_or_report()
    if catalog is None:
        return 1
    stats = catalog_stats(catalog)
    sys.stdout.write(json.dumps(stats, indent=2, default=str) + "\n" if args.json else format_stats(stats, catalog))
    return 0

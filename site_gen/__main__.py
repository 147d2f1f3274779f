"""`python -m site_gen COMMAND ...`: catalog tooling and site generation.

Each command lives in `site_gen/commands/<name>.py` and defines `add_arguments(parser)` and
`run(args) -> int`, plus a one-line module docstring used as its help.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "validate",  # check the catalog; exit 1 on problems
    "schema",    # write catalog/schema/paper.schema.json
    "stats",     # counts per stage, category, facet, year
    "export",    # json / yaml / csv / bibtex / csljson
    "build",     # generate the Markdown site sources
    "enrich",    # Semantic Scholar enrichment
    "graph",     # citation-graph analytics
    "ingest",    # arXiv ingestion
    "new",       # scaffold one entry from an arXiv id
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m site_gen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"site_gen.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"site_gen.commands.{name}":
                raise
            continue  # command not built yet in this checkout
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

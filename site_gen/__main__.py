"""`python -m site_gen COMMAND ...`: catalog tooling and site generation.

Each command lives in `site_gen/commands/<name>.py` and defines `add_arguments(parser)` and
`run(args) -> int`, plus a one-line module docstring used as its help.
"""
from __future__ import annotations

import sys

from site_gen.cli import dispatch

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
    return dispatch("python -m site_gen", __doc__.splitlines()[0], "site_gen", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

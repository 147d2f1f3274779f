"""`python -m methods COMMAND ...`: list, run and benchmark the executable methods.

Each command lives in `methods/commands/<name>.py` and defines `add_arguments(parser)` and
`run(args) -> int`, plus a one-line module docstring used as its help (same pattern as site_gen).
"""
from __future__ import annotations

import sys

from site_gen.cli import dispatch

COMMANDS = [
    "list",     # registered methods and their cards (no torch needed)
    "run",      # one request with one method: answer + stats
    "bench",    # sweep methods x models x budgets -> results JSON
    "merge",    # merge result files (CI shards) into one
    "dataset",  # write the small PIL-generated offline dataset
    "cost",     # analytical cost model (lead)
]


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m methods", __doc__.splitlines()[0], "methods", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

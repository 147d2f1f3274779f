"""`python -m methods COMMAND ...`: list, run and benchmark the executable methods.

Each command lives in `methods/commands/<name>.py` and defines `add_arguments(parser)` and
`run(args) -> int`, plus a one-line module docstring used as its help (same pattern as site_gen).
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "list",     # registered methods and their cards (no torch needed)
    "run",      # one request with one method: answer + stats
    "bench",    # sweep methods x models x budgets -> results JSON
    "merge",    # merge result files (CI shards) into one
    "dataset",  # write the small PIL-generated offline dataset
    "cost",     # analytical cost model (lead)
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m methods", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"methods.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"methods.commands.{name}":
                raise
            continue  # command not built yet in this checkout
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded as provenance by bench
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

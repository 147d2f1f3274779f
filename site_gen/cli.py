"""The command dispatcher shared by `python -m site_gen` and `python -m methods`.

Each command is a module `<package>.commands.<name>` with a one-line docstring (its help),
`add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys


def dispatch(prog: str, description: str, package: str, commands: list[str], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name in commands:
        mod = importlib.import_module(f"{package}.commands.{name}")
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, e.g. for provenance records
    return int(modules[args.command].run(args) or 0)

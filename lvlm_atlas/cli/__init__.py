"""The `atlas` command (also `python -m lvlm_atlas`).

Each subcommand is a module `lvlm_atlas.cli.<name>` with a one-line docstring (its help),
`add_arguments(parser)` and `run(args) -> int`. Command modules are imported only after `--root`
is known, so every data path they compute comes from the chosen project root.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# (group title, [(command, module)]) in the order `atlas --help` lists them.
GROUPS: list[tuple[str, list[str]]] = [
    ("catalog", ["validate", "stats", "export", "schema", "new"]),
    ("site", ["build"]),
    ("citation graph and ingestion", ["graph", "enrich", "ingest", "dates"]),
    ("methods", ["list", "run", "bench", "merge", "dataset", "cost"]),
]
COMMANDS = [name for _, names in GROUPS for name in names]
DESCRIPTION = ("LVLM Atlas: the catalog of efficient-inference research for vision-language models, "
               "its website, and runnable methods.")


def _root_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--root", default=None)
    return p


def _epilog() -> str:
    lines = ["command groups:"]
    for title, names in GROUPS:
        lines.append(f"  {title}: {', '.join(names)}")
    lines.append("run `atlas COMMAND --help` for a command's options")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "atlas") -> int:
    # (`list` here would be the `atlas list` submodule: importing it rebinds the name in this package)
    argv = [*(sys.argv[1:] if argv is None else argv)]
    known, _ = _root_parser().parse_known_args(argv)
    if known.root:
        if not os.path.isdir(os.path.join(known.root, "catalog")):
            print(f"{prog}: error: --root {known.root}: no catalog/ folder there; "
                  "write the folder that holds catalog/ (a checkout of the project)", file=sys.stderr)
            return 2
        os.environ["LVLM_ATLAS_ROOT"] = os.path.abspath(known.root)
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", metavar="DIR",
                        help="project root holding catalog/ (default: nearest such folder above the working directory)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name in COMMANDS:
        mod = importlib.import_module(f"lvlm_atlas.cli.{name}")
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    args.argv = argv  # the command line, e.g. for provenance records
    return int(modules[args.command].run(args) or 0)


def entry() -> None:  # console script
    sys.exit(main())

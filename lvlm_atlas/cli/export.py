"""Export the catalog as JSON, YAML, CSV, BibTeX or CSL-JSON (deterministic output)."""
from __future__ import annotations

import sys
from pathlib import Path

from lvlm_atlas.catalog.atomic import write_text_atomic
from lvlm_atlas.cli._catalog import catalog_or_report
from lvlm_atlas.catalog.exports import FORMATS, render_export


def add_arguments(parser) -> None:
    parser.add_argument("--format", "-f", choices=FORMATS, required=True)
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")


def run(args) -> int:
    catalog = catalog_or_report()
    if catalog is None:
        return 1
    text = render_export(catalog, args.format)
    if args.output:
        write_text_atomic(args.output, text)
        print(f"wrote {len(catalog)} paper(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

"""Merge benchmark result files (e.g. the shards of a CI matrix) into one results file."""
from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", help="results JSON files written by `atlas bench`")
    parser.add_argument("--out", required=True, help="merged results file")


def run(args) -> int:
    from lvlm_atlas.methods.bench import merge_results, write_results

    docs = []
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as fh:
                docs.append(json.load(fh))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"error: cannot read {path}: {exc}", file=sys.stderr)
            return 2
    try:
        rows, prov = merge_results(docs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_results(args.out, rows, prov)
    print(f"merged {len(docs)} file(s), {len(rows)} results -> {args.out}")
    return 0

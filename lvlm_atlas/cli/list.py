"""List the registered methods with their stage, paper and parameters (reads method cards; no torch)."""
from __future__ import annotations

import json

from lvlm_atlas.methods import registry


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the cards as JSON")


def run(args) -> int:
    rows = []
    for name in registry.names():
        try:
            card = registry.load_card(name).model_dump(mode="json")
        except FileNotFoundError:
            card = {"name": name, "label": name, "stage": "?", "paper": None, "parameters": []}
        rows.append(card)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True, default=str))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        params = ", ".join(f"{p['name']}={p.get('default')}" for p in r.get("parameters") or [])
        print(f"{r['name']:<{width}}  {r.get('stage', '?'):<7}  {r.get('label', '')} (paper: {r.get('paper') or '-'})"
              + (f"  [{params}]" if params else ""))
    return 0

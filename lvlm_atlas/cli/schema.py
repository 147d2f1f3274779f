"""Write the JSON Schema of a paper file (catalog/schema/paper.schema.json) for editors."""
from __future__ import annotations

import json
from pathlib import Path

from lvlm_atlas import paths
from lvlm_atlas.catalog.atomic import write_text_atomic
from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.taxonomy import FACETS, load_taxonomy


def paper_json_schema() -> dict:
    """The pydantic schema with the taxonomy's vocabularies inlined as enums, so editors autocomplete."""
    tax = load_taxonomy()
    schema = Paper.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://lvlm-atlas.github.io/schema/paper.schema.json"
    props = schema["properties"]
    for facet in FACETS:
        enum = list(tax.facet_ids(facet))
        if facet == "kind":
            props["kind"] = {**props["kind"], "enum": enum}
        else:
            props[facet]["items"] = {"type": "string", "enum": enum}
    placement = schema["$defs"]["Placement"]["properties"]["node"]
    placement["enum"] = [n.id for n in tax.nodes]
    return schema


def render_schema() -> str:
    return json.dumps(paper_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=paths.PAPER_SCHEMA)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")


def run(args) -> int:
    text = render_schema()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run: atlas schema")
            return 1
        return 0
    write_text_atomic(args.output, text)
    print(f"wrote {args.output}")
    return 0

"""The Contributing page: the hand-written guide (docs/contributing.md) followed by a schema reference
generated from the pydantic models and the taxonomy's vocabularies, so it can never drift."""
from __future__ import annotations

import types
import typing
from pathlib import Path

from pydantic import BaseModel

from lvlm_atlas.catalog import models
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import code, esc
from lvlm_atlas.site.registry import register_page_builder

MARKER = "<!-- atlas:schema-reference -->"
NESTED = [models.Links, models.CodeLink, models.Identifiers, models.Placement]


def _type_name(ann) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " | ".join(names) + (" | null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann.__name__
    name = getattr(ann, "__name__", str(ann))
    return {"AnyUrl": "URL", "str": "string", "int": "integer", "float": "number", "bool": "boolean",
            "date": "date (YYYY-MM-DD)"}.get(name, name)


def model_table(model: type[BaseModel]) -> str:
    lines = ["| Field | Type | Required | Description |", "|---|---|---|---|"]
    for name, f in model.model_fields.items():
        req = "yes" if f.is_required() else "no"
        desc = f.description or ""
        if not f.is_required() and f.default not in (None, [], ...) and not callable(f.default):
            desc = (desc + f" Default: {f.default!r}.").strip()
        lines.append(f"| {code(name)} | {esc(_type_name(f.annotation))} | {req} | {esc(desc)} |")
    return "\n".join(lines) + "\n"


def schema_reference(ctx: RenderContext) -> str:
    tax = ctx.taxonomy
    out = ["## Schema reference", "",
           "Generated from the pydantic models in `lvlm_atlas/catalog/models.py`; the JSON Schema for editors is "
           "written by `atlas schema`.", "",
           f"### {models.Paper.__name__}", "", esc((models.Paper.__doc__ or "").strip()), "", model_table(models.Paper)]
    for m in NESTED:
        out += [f"### {m.__name__}", "", esc((m.__doc__ or "").strip()), "", model_table(m)]
    out += ["### Vocabularies", "", "Allowed values of the tag fields, from `catalog/taxonomy.yaml`.", ""]
    for facet, terms in tax.facets.items():
        out += [f"#### {code(facet)}", "", "| Value | Meaning |", "|---|---|"]
        out += [f"| {code(t.id)} | {esc(t.label)}: {esc(t.description)} |" for t in terms]
        out.append("")
    out += ["#### Taxonomy nodes (`placements[].node`)", "", "| Node id | Label |", "|---|---|"]
    out += [f"| {code(n.id)} | [{esc(n.label)}]({ctx.category_url(n.id)}) |" for n in tax.nodes]
    return "\n".join(out) + "\n"


def contributing_page(ctx: RenderContext) -> str:
    ctx = ctx.at("contributing.md")
    src = Path(ctx.repo_root) / "docs" / "contributing.md"
    guide = src.read_text(encoding="utf-8") if src.is_file() else "# Contributing\n\n" + MARKER + "\n"
    if MARKER not in guide:
        guide += "\n" + MARKER + "\n"
    return guide.replace(MARKER, schema_reference(ctx))


@register_page_builder
def contributing_pages(ctx: RenderContext):
    yield "contributing.md", contributing_page(ctx)

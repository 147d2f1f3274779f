"""Facet pages: one index per facet (bottleneck, granularity, modality, scenario, kind, year, venue,
training-free, has code, runnable) and one page per term listing its papers."""
from __future__ import annotations

from .. import urls
from ..blocks import by_date, method_table
from ..context import RenderContext
from ..escape import esc, front_matter_title
from ..registry import register_page_builder


def facets_index(ctx: RenderContext) -> str:
    ctx = ctx.at("facets/index.md")
    lines = ["---", front_matter_title("Facets"), "---", "", "# Facets", "",
             "Cross-cutting ways to slice the catalog. The [Explorer](../explorer.md) combines them.", ""]
    for f in ctx.indexes.facets:
        terms = ctx.indexes.facet_terms[f.id]
        shown = ", ".join(f"[{esc(t.label)}]({ctx.facet_url(f.id, t.slug)}) ({len(ps)})" for t, ps in terms)
        lines += [f"## [{esc(f.label)}]({ctx.facet_url(f.id)})", "", esc(f.description), "", shown or "_No papers yet._", ""]
    return "\n".join(lines)


def facet_page(ctx: RenderContext, facet) -> str:
    ctx = ctx.at(urls.facet_index(facet.id))
    lines = ["---", front_matter_title(facet.label), "---", "", f"# {esc(facet.label)}", "", esc(facet.description), "",
             "| Term | Papers | Meaning |", "|---|---|---|"]
    for t, ps in ctx.indexes.facet_terms[facet.id]:
        lines.append(f"| [{esc(t.label)}]({ctx.facet_url(facet.id, t.slug)}) | {len(ps)} | {esc(t.description) or '–'} |")
    return "\n".join(lines) + "\n"


def term_page(ctx: RenderContext, facet, term, papers) -> str:
    ctx = ctx.at(urls.facet_term(facet.id, term.slug))
    lines = ["---", front_matter_title(f"{facet.label}: {term.label}"), "---", "",
             f"# {esc(facet.label)}: {esc(term.label)}", "",
             f"<small>[All {esc(facet.label.lower())} terms]({ctx.facet_url(facet.id)}) · [Explorer]({ctx.link('explorer.md')})</small>", ""]
    if term.description:
        lines += [esc(term.description), ""]
    lines += [f"{len(papers)} papers, newest first.", "", method_table(ctx, by_date(papers))]
    return "\n".join(lines)


@register_page_builder
def facet_pages(ctx: RenderContext):
    yield "facets/index.md", facets_index(ctx)
    for f in ctx.indexes.facets:
        yield urls.facet_index(f.id), facet_page(ctx, f)
        for term, papers in ctx.indexes.facet_terms[f.id]:
            yield urls.facet_term(f.id, term.slug), term_page(ctx, f, term, papers)

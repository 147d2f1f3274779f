"""Facet pages: one page per facet (bottleneck, granularity, modality, scenario, kind, year, venue,
training-free, has code, runnable) with a section per term listing its papers compactly; paper tags
link to `facets/<facet>.md#<term>`. The Explorer combines facets interactively.

Term sections list papers by name (not full tables): every paper appears on every facet page, so full
tables would multiply the site's size by the number of facets. Listing pages are left out of the
search index, which already holds each paper's own page.
"""
from __future__ import annotations

from lvlm_atlas.site import urls
from lvlm_atlas.site.blocks import by_date, paper_a, region
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import esc, front_matter_title
from lvlm_atlas.site.registry import register_page_builder

# Facets the Explorer can filter on (query parameter = facet id; values are term slugs).
EXPLORER_FILTERS = {"bottleneck", "granularity", "modality", "year"}

NO_SEARCH = ["search:", "  exclude: true"]


def facets_index(ctx: RenderContext) -> str:
    ctx = ctx.at(urls.facet_index_page())
    lines = ["---", front_matter_title("Facets"), *NO_SEARCH, "---", "", "# Facets", "",
             f"Cross-cutting ways to slice the catalog. The [Explorer]({ctx.link('explorer.md')}) combines them.", ""]
    for f in ctx.indexes.facets:
        terms = ctx.indexes.facet_terms[f.id]
        shown = ", ".join(f"[{esc(t.label)}]({ctx.facet_url(f.id, t.slug)}) ({len(ps)})" for t, ps in terms)
        lines += [f"## [{esc(f.label)}]({ctx.facet_url(f.id)})", "", esc(f.description), "", shown or "_No papers yet._", ""]
    return "\n".join(lines)


def facet_page(ctx: RenderContext, facet) -> str:
    ctx = ctx.at(urls.facet_index(facet.id))
    terms = ctx.indexes.facet_terms[facet.id]
    lines = ["---", front_matter_title(facet.label), *NO_SEARCH, "---", "", f"# {esc(facet.label)}", "",
             esc(facet.description), "",
             " · ".join(f"[{esc(t.label)}](#{t.slug}) ({len(ps)})" for t, ps in terms) or "_No papers yet._", ""]
    for t, ps in terms:
        lines += [f"## {esc(t.label)} {{ #{t.slug} }}", ""]
        if t.description:
            lines += [esc(t.description), ""]
        more = ""
        if facet.id in EXPLORER_FILTERS:
            more = f" · [filter in the Explorer]({ctx.link('explorer.md')}?{facet.id}={t.slug})"
        lines += [f"{len(ps)} papers, newest first{more}.", "",
                  region('<p class="atlas-term-papers">' + ", ".join(f"{paper_a(ctx, p)} ({p.year})" for p in by_date(ps)) + "</p>")]
    return "\n".join(lines)


@register_page_builder
def facet_pages(ctx: RenderContext):
    yield urls.facet_index_page(), facets_index(ctx)
    for f in ctx.indexes.facets:
        yield urls.facet_index(f.id), facet_page(ctx, f)

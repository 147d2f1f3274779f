"""The home page: what the field is about, the pipeline figure, live counts, latest additions."""
from __future__ import annotations

from lvlm_atlas.site import svg, urls
from lvlm_atlas.site.blocks import paper_a, region, runnable_badge, venue_year
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import esc
from lvlm_atlas.site.registry import register_page_builder

LATEST = 10

INTRO = """\
Large vision-language models (LVLMs) answer questions about images and videos by turning pixels into
hundreds or thousands of *visual tokens* and feeding them to a language model together with the text
prompt. Those tokens usually outnumber the words many times over, so most of the time and memory of
an LVLM request is spent on them: once when the vision encoder produces them, again when the language
model reads them all in one parallel pass, and at every generated token, when the cached keys and
values of every visual token are read back from memory.

Efficient-inference research attacks that cost at each of the three stages below: cheaper encoders,
fewer frames and adaptive resolution while **encoding**; pruning, merging and sparse attention while
**prefilling**; smaller KV caches, speculative drafting and shorter reasoning while **decoding**; and
serving systems that schedule the stages across devices. LVLM Atlas is a living, validated catalog of
that work, generated into this site from YAML files that anyone can extend by pull request, with the
results papers report (each number with its paper version and table), and runnable implementations of
some methods, timed on random-weight models (tokens, bytes and time; accuracy comes only from the papers)."""


def home_page(ctx: RenderContext) -> str:
    ctx = ctx.at("index.md")
    tax = ctx.taxonomy
    papers = ctx.papers
    stage_counts = {s.id: sum(1 for p in papers if s.id in p.stages(tax)) for s in tax.stages}
    runnable = sum(1 for p in papers if ctx.indexes.runnable(p))
    with_code = sum(1 for p in papers if p.links.code)
    counts = [
        (len(papers), "papers", ctx.link("explorer.md")),
        (len([n for n in tax.nodes]), "categories", ctx.link("categories/index.md")),
        (with_code, "with code", ctx.facet_url("has-code", "yes")),
        (runnable, "runnable here", ctx.link("methods/index.md")),
        (len(ctx.indexes.facet_terms.get("venue", [])), "venue series", ctx.facet_url("venue")),
    ]
    count_html = '<div class="atlas-counts" markdown>' + "".join(
        f'<div markdown><strong>{n}</strong> [{label}]({href})</div>' for n, label, href in counts) + "</div>"
    latest = ctx.indexes.recent[:LATEST]
    latest_md = region("<ul>\n" + "\n".join(
        f"<li>{p.added.isoformat()}: {paper_a(ctx, p)}{runnable_badge(ctx, p)} ({venue_year(p)}): {esc(p.title)}</li>"
        for p in latest) + "\n</ul>") if latest else "_The catalog is empty._"
    years = sorted({p.year for p in papers})
    span = f"{years[0]}–{years[-1]}" if years else "–"
    return "\n".join([
        "---", "hide:", "  - navigation", "  - toc", "---", "",
        "# LVLM Atlas", "",
        "**Efficient inference for large vision-language models: a living, executable map of the field.**", "",
        INTRO, "",
        f'<figure class="atlas-figure">{svg.pipeline(stage_counts)}<figcaption>The three stages of LVLM inference '
        f"and the number of catalog papers acting on each (a paper can act on several).</figcaption></figure>", "",
        "## The catalog today", "",
        count_html, "",
        f"Papers from {span}. Browse by [inference stage]({ctx.link(urls.taxonomy_view('stage'))}), by the "
        f"[four dimensions]({ctx.link(urls.taxonomy_view('dimensions'))}), by [facet]({ctx.link('facets/index.md')}), "
        f"or filter everything at once in the [Explorer]({ctx.link('explorer.md')}).", "",
        f"![Papers per year]({ctx.link('assets/charts/papers-per-year.svg')}){{ .atlas-chart width=\"560\" }}", "",
        "## Latest additions", "",
        latest_md, "",
        f"[All recent additions]({ctx.link('recent.md')}) · [Atom feed]({ctx.link('feed.xml')}) · "
        f"[Download the catalog]({ctx.link('exports.md')})", "",
    ])


@register_page_builder
def home_pages(ctx: RenderContext):
    yield "index.md", home_page(ctx)
    counts: dict[int, int] = {}
    for p in ctx.papers:
        counts[p.year] = counts.get(p.year, 0) + 1
    if counts:
        ys = range(min(counts), max(counts) + 1)
        series = [(str(y), counts.get(y, 0)) for y in ys]
    else:
        series = []
    yield "assets/charts/papers-per-year.svg", svg.bar_chart(series, "Papers per year (venue or first-version year)")

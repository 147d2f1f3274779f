"""One page per paper: metadata, authors, tags, links, abstract, reported results, BibTeX, and the
sections other parts of the project register (citation graph, run this method, measured results)."""
from __future__ import annotations

from urllib.parse import quote

from ...models import Paper
from .. import urls
from ..blocks import candidate_badge, runnable_badge
from ..context import RenderContext
from ..escape import esc, esc_block, esc_paragraphs, external_link, front_matter_title
from ..registry import PAPER_SECTIONS, SLOTS, register_page_builder, section_slot

PLACEHOLDERS = {
    "citations": (
        "Citations in the catalog",
        "Which catalog papers this one cites and which cite it appears here once the citation graph has "
        "been computed for it.",
    ),
    "run": (
        "Run this method",
        "No runnable implementation of this paper in LVLM Atlas yet. The [methods](../methods/index.md) "
        "page lists the implemented ones; [Contributing](../contributing.md) explains how to add one.",
    ),
    "results": (
        "Measured results",
        "Nothing measured for this paper yet: results appear here when a benchmark run of its "
        "implementation is committed to `catalog/benchmarks/`.",
    ),
}


def _identifier_links(paper: Paper) -> list[str]:
    ids = paper.identifiers
    out = []
    if ids.arxiv:
        out.append("arXiv " + external_link(ids.arxiv, f"https://arxiv.org/abs/{quote(ids.arxiv, safe='/.')}"))
    if ids.doi:
        out.append("DOI " + external_link(ids.doi, f"https://doi.org/{quote(ids.doi, safe='/.-_;()')}"))
    if ids.openreview:
        out.append("OpenReview " + external_link(ids.openreview, f"https://openreview.net/forum?id={quote(ids.openreview, safe='')}"))
    if ids.acl:
        out.append("ACL Anthology " + external_link(ids.acl, f"https://aclanthology.org/{quote(ids.acl, safe='.-')}/"))
    if ids.semantic_scholar:
        out.append("Semantic Scholar " + external_link(ids.semantic_scholar[:10] + "…", f"https://www.semanticscholar.org/paper/{quote(ids.semantic_scholar, safe='')}"))
    return out


def _links(paper: Paper) -> list[str]:
    links = paper.links
    out = [external_link("Paper", links.paper)]
    if links.pdf:
        out.append(external_link("PDF", links.pdf))
    for c in links.code:
        out.append(external_link("Code (official)" if c.official else "Code (unofficial)", c.url))
    if links.project:
        out.append(external_link("Project page", links.project))
    return out


def _tags(ctx: RenderContext, paper: Paper, facet: str) -> str:
    terms = ctx.indexes.paper_terms[paper.id].get(facet, [])
    return ", ".join(f"[{esc(t.label)}]({ctx.facet_url(facet, t.slug)})" for t in terms)


def _placement_line(ctx: RenderContext, node_id: str) -> str:
    tax = ctx.taxonomy
    chain = tax.ancestors(node_id) + [tax.node_by_id[node_id]]
    return " › ".join(f"[{esc(n.label)}]({ctx.category_url(n.id)})" for n in chain)


def metadata(ctx: RenderContext, paper: Paper) -> str:
    tax = ctx.taxonomy
    lines = [f"- **Authors:** {esc(', '.join(paper.authors))}"]
    lines.append(f"- **Published:** {esc(paper.venue) if paper.venue else 'preprint'} "
                 f"([{paper.year}]({ctx.facet_url('year', str(paper.year))})), first version {esc(paper.date)}"
                 + (f"; venue series [{esc(ctx.indexes.paper_terms[paper.id]['venue'][0].label)}]"
                    f"({ctx.facet_url('venue', ctx.indexes.paper_terms[paper.id]['venue'][0].slug)})"))
    lines.append(f"- **Kind:** {_tags(ctx, paper, 'kind')}")
    primary = paper.primary_node
    lines.append(f"- **Category:** {_placement_line(ctx, primary)}")
    for pl in paper.placements:
        if not pl.primary:
            lines.append(f"- **Also in:** {_placement_line(ctx, pl.node)}")
    dims = paper.dimension_nodes(tax)
    if dims:
        lines.append("- **Four-dimension view:** " + "; ".join(_placement_line(ctx, d) for d in dims))
    for facet, label in (("bottleneck", "Bottleneck"), ("granularity", "Granularity"),
                         ("modality", "Modality"), ("scenario", "Scenario")):
        tags = _tags(ctx, paper, facet)
        if tags:
            lines.append(f"- **{label}:** {tags}")
    lines.append(f"- **Training-free:** {_tags(ctx, paper, 'training-free')}")
    lines.append(f"- **Code:** {_tags(ctx, paper, 'has-code')} · **Runnable here:** {_tags(ctx, paper, 'runnable')}")
    lines.append("- **Links:** " + " · ".join(_links(paper)))
    ident = _identifier_links(paper)
    if ident:
        lines.append("- **Identifiers:** " + " · ".join(ident))
    by_id = ctx.catalog.by_id
    if paper.builds_on:
        lines.append("- **Builds on:** " + ", ".join(ctx.paper_link(by_id[i]) if i in by_id else esc(i) for i in paper.builds_on))
    extended = ctx.indexes.cited_ids.get(paper.id, [])
    if extended:
        lines.append("- **Extended by:** " + ", ".join(ctx.paper_link(by_id[i]) for i in extended))
    if paper.journal_ref:
        lines.append(f"- **Journal reference:** {esc(paper.journal_ref)}")
    if paper.comment:
        lines.append(f"- **arXiv comment:** {esc(paper.comment)}")
    source = "added by hand" if paper.source == "manual" else "found by arXiv ingestion"
    lines.append(f"- **Catalog entry:** `{paper.id}`, {source} on {paper.added.isoformat()}"
                 + (", awaiting review" if paper.candidate else ""))
    return "\n".join(lines) + "\n"


def reported_results(paper: Paper) -> str:
    if not paper.results:
        return ""
    rows = ["| Model | Benchmark | Metric | Value | Baseline | Setting |", "|---|---|---|---|---|---|"]
    for r in paper.results:
        value = f"{r.value:g}" + (f" {esc(r.unit)}" if r.unit else "")
        base = "–" if r.baseline is None else f"{r.baseline:g}"
        rows.append(f"| {esc(r.model)} | {esc(r.benchmark)} | {esc(r.metric)} | {value} | {base} | {esc(r.setting) or '–'} |")
    return "## Reported by the authors\n\n" + "\n".join(rows) + "\n"


def bibtex_block(paper: Paper) -> str:
    from ...exports import bibtex_entry  # the lead's exporter is the one source of BibTeX

    entry = bibtex_entry(paper).strip("\n")
    return (f'<pre class="atlas-bibtex" id="bibtex-{paper.id}"><code>{esc_block(entry)}</code></pre>\n')


def render_sections(ctx: RenderContext, paper: Paper) -> str:
    parts: list[str] = []
    filled: set[str] = set()
    for fn in PAPER_SECTIONS:
        text = fn(ctx, paper)
        if not text or not text.strip():
            continue
        slot = section_slot(fn)
        if slot:
            filled.add(slot)
        text = text.strip("\n")
        if not text.startswith("#"):
            title = getattr(fn, "title", None) or fn.__name__.replace("_", " ").strip().capitalize()
            text = f"## {esc(title)}\n\n{text}"
        parts.append(text)
    for slot in SLOTS:
        if slot not in filled:
            title, body = PLACEHOLDERS[slot]
            parts.append(f'## {title}\n\n<p class="atlas-placeholder" data-slot="{slot}" markdown>{body}</p>')
    return "\n\n".join(parts) + "\n"


def paper_page(ctx: RenderContext, paper: Paper) -> str:
    ctx = ctx.at(urls.paper(paper.id))
    abstract = esc_paragraphs(paper.abstract)
    out = [
        "---",
        front_matter_title(f"{paper.name}: {paper.title}"),
        "---",
        "",
        f"# {esc(paper.title)}",
        "",
        f"**{esc(paper.name)}**{runnable_badge(ctx, paper)}{candidate_badge(paper)}",
        "",
        esc(paper.summary),
        "",
        metadata(ctx, paper),
    ]
    card = ctx.indexes.card_for(paper)
    if card is not None:
        out.append(f'[Method card: {esc(card.label)}]({ctx.method_url(card.name)}){{ .md-button }}\n')
    if abstract:
        out.append("## Abstract\n\n" + "\n\n".join(abstract) + "\n")
    rr = reported_results(paper)
    if rr:
        out.append(rr)
    out.append("## Cite\n\n" + bibtex_block(paper))
    out.append(render_sections(ctx, paper))
    return "\n".join(out)


@register_page_builder
def paper_pages(ctx: RenderContext):
    for paper in ctx.papers:
        yield urls.paper(paper.id), paper_page(ctx, paper)

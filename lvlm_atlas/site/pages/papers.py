"""One page per paper: metadata, authors, tags, links, abstract, reported results, BibTeX, and the
sections other parts of the project register (citation graph, run this method, measured results)."""
from __future__ import annotations

from urllib.parse import quote

from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.site import urls
from lvlm_atlas.site.blocks import a, candidate_badge, paper_a, region, runnable_badge
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import esc, esc_block, esc_paragraphs, external_link, front_matter_title, heading
from lvlm_atlas.site.mkdocs_hooks import BEGIN, LATE_BEGIN
from lvlm_atlas.site.registry import PAPER_SECTIONS, SLOTS, register_page_builder, section_slot


def placeholder(ctx: RenderContext, slot: str) -> tuple[str, str]:
    """(heading, HTML paragraph) shown when no registered section fills a slot (plain HTML: cheaper
    for MkDocs than Markdown inside HTML, and the links are computed here)."""
    if slot == "citations":
        return ("Citations in the catalog",
                "Which catalog papers this one cites and which cite it appears here once the citation graph "
                "has been computed for it.")
    if slot == "run":
        return ("Run this method",
                "No runnable implementation of this paper in LVLM Atlas yet. The "
                f'<a href="{ctx.href("methods/index.md")}">methods</a> page lists the implemented ones; '
                f'<a href="{ctx.href("contributing.md")}">Contributing</a> explains how to add one.')
    return ("Measured results",
            "Nothing measured for this paper yet: results appear here when a benchmark run of its "
            "implementation is committed to <code>catalog/benchmarks/</code>.")


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


def _shared(ctx: RenderContext, key: tuple, make) -> str:
    """A link fragment that many paper pages share. Links are relative through the site root
    (`urls.rel_url`), so pages at the same depth get identical fragments: make each one once per build
    and depth (the cache lives in the build's context, so a new build never sees an old catalog)."""
    cache = ctx.extra.setdefault("papers.shared-fragments", {})
    full = (urls.root_url(ctx.page, ctx.directory_urls), ctx.directory_urls) + key
    text = cache.get(full)
    if text is None:
        text = cache[full] = make()
    return text


def _tags(ctx: RenderContext, paper: Paper, facet: str) -> str:
    terms = ctx.indexes.paper_terms[paper.id].get(facet, [])
    if not terms:
        return ""
    return _shared(ctx, ("tags", facet) + tuple((t.slug, t.label) for t in terms),
                   lambda: ", ".join(a(ctx.href(urls.facet_term(facet, t.slug)), esc(t.label)) for t in terms))


def _placement_line(ctx: RenderContext, node_id: str) -> str:
    def make() -> str:
        tax = ctx.taxonomy
        chain = tax.ancestors(node_id) + [tax.node_by_id[node_id]]
        return " › ".join(a(ctx.href(urls.category(n.id)), esc(n.label)) for n in chain)
    return _shared(ctx, ("category", node_id), make)


def metadata(ctx: RenderContext, paper: Paper) -> str:
    """The paper's facts as an HTML list (every value escaped, every link computed or checked)."""
    tax = ctx.taxonomy
    venue_term = ctx.indexes.paper_terms[paper.id]["venue"][0]
    year = _shared(ctx, ("year", paper.year), lambda: a(ctx.href(urls.facet_term("year", str(paper.year))), str(paper.year)))
    series = _shared(ctx, ("venue", venue_term.slug, venue_term.label),
                     lambda: a(ctx.href(urls.facet_term("venue", venue_term.slug)), esc(venue_term.label)))
    items = [
        ("Published", f"{esc(paper.venue) if paper.venue else 'preprint'} ({year}), "
                      f"first version {esc(paper.date)}; venue series {series}"),
        ("Kind", _tags(ctx, paper, "kind")),
        ("Category", _placement_line(ctx, paper.primary_node)),
    ]
    items += [("Also in", _placement_line(ctx, pl.node)) for pl in paper.placements if not pl.primary]
    dims = paper.dimension_nodes(tax)
    if dims:
        items.append(("Four-dimension view", "; ".join(_placement_line(ctx, d) for d in dims)))
    for facet, label in (("bottleneck", "Bottleneck"), ("granularity", "Granularity"),
                         ("modality", "Modality"), ("scenario", "Scenario")):
        tags = _tags(ctx, paper, facet)
        if tags:
            items.append((label, tags))
    items.append(("Training-free", _tags(ctx, paper, "training-free")))
    items.append(("Code", _tags(ctx, paper, "has-code") + " · <strong>Runnable here:</strong> " + _tags(ctx, paper, "runnable")))
    items.append(("Links", " · ".join(_links(paper))))
    ident = _identifier_links(paper)
    if ident:
        items.append(("Identifiers", " · ".join(ident)))
    by_id = ctx.catalog.by_id
    if paper.builds_on:
        items.append(("Builds on", ", ".join(paper_a(ctx, by_id[i]) if i in by_id else esc(i) for i in paper.builds_on)))
    extended = ctx.indexes.cited_ids.get(paper.id, [])
    if extended:
        items.append(("Extended by", ", ".join(paper_a(ctx, by_id[i]) for i in extended)))
    if paper.journal_ref:
        items.append(("Journal reference", esc(paper.journal_ref)))
    if paper.comment:
        items.append(("arXiv comment", esc(paper.comment)))
    source = "added by hand" if paper.source == "manual" else "found by arXiv ingestion"
    items.append(("Catalog entry", f"<code>{esc(paper.id)}</code>, {source} on {paper.added.isoformat()}"
                  + (", awaiting review" if paper.candidate else "")))
    return '<ul class="atlas-meta">\n' + "\n".join(f"<li><strong>{k}:</strong> {v}</li>" for k, v in items) + "\n</ul>"


def bibtex_block(paper: Paper) -> str:
    from lvlm_atlas.catalog.exports import bibtex_entry  # the lead's exporter is the one source of BibTeX

    entry = bibtex_entry(paper).strip("\n")
    return (f'<pre class="atlas-bibtex" id="bibtex-{paper.id}"><code>{esc_block(entry)}</code></pre>\n')


def _placeholders(ctx: RenderContext, slots: tuple[str, ...]) -> str:
    holders = []
    for slot in slots:
        title, body = placeholder(ctx, slot)
        holders.append(f'<h2 id="{slot}">{title}</h2>\n<p class="atlas-placeholder" data-slot="{slot}">{body}</p>')
    return region("\n".join(holders), searchable=False)


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
        if not text.startswith(("#", BEGIN, LATE_BEGIN)):  # a region carries its own heading
            title = getattr(fn, "title", None) or fn.__name__.replace("_", " ").strip().capitalize()
            text = f"## {esc(title)}\n\n{text}"
        parts.append(text)
    missing = tuple(slot for slot in SLOTS if slot not in filled)
    if missing:
        parts.append(_shared(ctx, ("placeholders",) + missing, lambda: _placeholders(ctx, missing)))
    return "\n\n".join(parts) + "\n"


def page_title(paper: Paper) -> str:
    """The browser title: "Name: Title", or the title alone when it already starts with the name
    ("FLoC: Facility Location-Based ..." would otherwise read "FLoC: FLoC: ...")."""
    return paper.title if paper.title.casefold().startswith(paper.name.casefold()) else f"{paper.name}: {paper.title}"


def paper_page(ctx: RenderContext, paper: Paper) -> str:
    """The page: searchable blocks (name, summary, authors, abstract) and blocks added after search
    indexing (tags and links, reported results, BibTeX, placeholders), all as finished HTML."""
    ctx = ctx.at(urls.paper(paper.id))
    lead = [f'<p class="atlas-lead"><strong>{esc(paper.name)}</strong>{runnable_badge(ctx, paper)}{candidate_badge(paper)}</p>',
            f"<p>{esc(paper.summary)}</p>",
            f'<p class="atlas-authors"><strong>Authors:</strong> {esc(", ".join(paper.authors))}</p>']
    meta = [metadata(ctx, paper)]
    card = ctx.indexes.card_for(paper)
    if card is not None:
        meta.append(f'<p>{a(ctx.href(urls.method(card.name)), "Method card: " + esc(card.label), "md-button")}</p>')
    abstract = esc_paragraphs(paper.abstract)
    cite = ['<h2 id="cite">Cite</h2>', bibtex_block(paper)]
    return "\n".join([
        "---",
        front_matter_title(page_title(paper)),
        "hide:",
        "  - toc",
        "---",
        "",
        region("\n".join([heading(paper.title)] + lead)),  # all HTML: MkDocs skips Markdown for the page
        region("\n".join(meta), searchable=False),
        region('<h2 id="abstract">Abstract</h2>\n' + "\n".join(f"<p>{para}</p>" for para in abstract), searchable=False) if abstract else "",
        region("\n".join(x for x in cite if x), searchable=False),
        render_sections(ctx, paper),
    ])


@register_page_builder
def paper_pages(ctx: RenderContext):
    for paper in ctx.papers:
        yield urls.paper(paper.id), paper_page(ctx, paper)

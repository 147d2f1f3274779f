"""HTML fragments shared by several pages: method tables, paper lists, badges, tag links.

Large generated content is written as HTML (inside `region(...)`, which the MkDocs hook lets skip the
Markdown converter); every data value in it is passed through `esc`, every link target is either a
page URL computed by us (`ctx.href`) or an http(s) URL checked by `safe_href`.
"""
from __future__ import annotations

from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.site import urls
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import esc, safe_href
from lvlm_atlas.site.mkdocs_hooks import BEGIN, END, LATE_BEGIN, LATE_END


def region(html: str, searchable: bool = True) -> str:
    """Mark a block of finished HTML so that MkDocs does not run it through Markdown. With
    `searchable=False` the block is also kept out of the search index (inserted after indexing)."""
    if searchable:
        return f"\n{BEGIN}\n{html}\n{END}\n"
    return f"\n{LATE_BEGIN}\n{html}\n{LATE_END}\n"


def a(href: str, text_html: str, cls: str | None = None, title: str | None = None) -> str:
    attrs = f' class="{cls}"' if cls else ""
    attrs += f' title="{esc(title)}"' if title else ""
    return f'<a href="{href}"{attrs}>{text_html}</a>'


def paper_a(ctx: RenderContext, paper: Paper) -> str:
    return a(ctx.href(urls.paper(paper.id)), esc(paper.name))


def runnable_badge(ctx: RenderContext, paper: Paper) -> str:
    if not ctx.indexes.runnable(paper):
        return ""
    card = ctx.indexes.card_for(paper)
    if card is None:
        return ' <span class="atlas-badge atlas-badge--runnable" title="runnable implementation in methods/">runnable</span>'
    return " " + a(ctx.href(urls.method(card.name)), "runnable", "atlas-badge atlas-badge--runnable", "method card")


def candidate_badge(paper: Paper) -> str:
    return ' <span class="atlas-badge atlas-badge--candidate" title="ingested, not yet reviewed">candidate</span>' if paper.candidate else ""


def venue_year(paper: Paper) -> str:
    return esc(paper.venue) if paper.venue else f"Preprint {paper.year}"


def terms_text(ctx: RenderContext, paper: Paper, facet: str) -> str:
    terms = ctx.indexes.paper_terms[paper.id].get(facet, [])
    return ", ".join(esc(t.label) for t in terms) or "–"


def training_free_text(paper: Paper) -> str:
    return {True: "yes", False: "no", None: "n/a"}[paper.training_free]


def code_cell(paper: Paper) -> str:
    links = []
    for i, c in enumerate(paper.links.code):
        href = safe_href(c.url)
        if href:
            label = ("code" if c.official else "code (unofficial)") if i == 0 else str(i + 1)
            links.append(f'<a href="{href}" rel="noopener nofollow">{label}</a>')
    return " ".join(links) or "–"


METHOD_COLUMNS = ("Method", "Year", "Venue", "Modality", "Training-free", "Granularity", "Key idea", "Code")


def method_table(ctx: RenderContext, papers: list[Paper], empty: str = "No papers in this category yet.") -> str:
    """A table in the spirit of the ACL survey's Tables 2 and 3, one row per paper (HTML region)."""
    if not papers:
        return f"_{empty}_\n"
    head = "".join(f"<th>{c}</th>" for c in METHOD_COLUMNS)
    rows = []
    for p in papers:
        rows.append(
            f"<tr><td>{paper_a(ctx, p)}{runnable_badge(ctx, p)}{candidate_badge(p)}</td><td>{p.year}</td><td>{venue_year(p)}</td>"
            f"<td>{terms_text(ctx, p, 'modality')}</td><td>{training_free_text(p)}</td>"
            f"<td>{terms_text(ctx, p, 'granularity')}</td><td>{esc(p.summary)}</td><td>{code_cell(p)}</td></tr>"
        )
    return region(f'<table class="atlas-methods atlas-sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
                  + "\n".join(rows) + "\n</tbody>\n</table>", searchable=False)


def paper_list(ctx: RenderContext, papers: list[Paper]) -> str:
    """A bullet list: name (linked), badges, venue, title (HTML region)."""
    if not papers:
        return "_None yet._\n"
    items = "\n".join(f"<li>{paper_a(ctx, p)}{runnable_badge(ctx, p)} ({venue_year(p)}): {esc(p.title)}</li>"
                      for p in papers)
    return region(f"<ul>\n{items}\n</ul>", searchable=False)


def by_date(papers: list[Paper]) -> list[Paper]:
    """Newest first by first-version date, then by name."""
    return sorted(papers, key=lambda p: (-p.first_day.toordinal(), p.name.lower(), p.id))

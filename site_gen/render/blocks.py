"""Markdown fragments shared by several pages: method tables, paper lists, badges.

Every data value is passed through `esc`; every link target is either a page path computed by us or
an http(s) URL checked by `safe_href`.
"""
from __future__ import annotations

from ..models import Paper
from .context import RenderContext
from .escape import esc, safe_href


def runnable_badge(ctx: RenderContext, paper: Paper) -> str:
    if not ctx.indexes.runnable(paper):
        return ""
    card = ctx.indexes.card_for(paper)
    if card is None:
        return ' <span class="atlas-badge atlas-badge--runnable" title="runnable implementation in methods/">runnable</span>'
    return f' [runnable]({ctx.method_url(card.name)}){{ .atlas-badge .atlas-badge--runnable title="method card" }}'


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
            label = "code" if c.official else "code (unofficial)"
            links.append(f'<a href="{href}" rel="noopener nofollow">{label if i == 0 else i + 1}</a>')
    return " ".join(links) or "–"


def method_table(ctx: RenderContext, papers: list[Paper]) -> str:
    """A table in the spirit of the ACL survey's Tables 2 and 3, one row per paper."""
    if not papers:
        return "_No papers in this category yet._\n"
    head = ("| Method | Venue | Modality | Training-free | Granularity | Key idea | Code |\n"
            "|---|---|---|---|---|---|---|\n")
    rows = []
    for p in papers:
        rows.append(
            f"| {ctx.paper_link(p)}{runnable_badge(ctx, p)}{candidate_badge(p)} | {venue_year(p)} | "
            f"{terms_text(ctx, p, 'modality')} | {training_free_text(p)} | {terms_text(ctx, p, 'granularity')} | "
            f"{esc(p.summary)} | {code_cell(p)} |"
        )
    return head + "\n".join(rows) + "\n"


def paper_list(ctx: RenderContext, papers: list[Paper]) -> str:
    """A compact bullet list: name (linked), year, venue, title."""
    if not papers:
        return "_None yet._\n"
    return "\n".join(
        f"- {ctx.paper_link(p)}{runnable_badge(ctx, p)} ({venue_year(p)}): {esc(p.title)}" for p in papers
    ) + "\n"


def by_date(papers: list[Paper]) -> list[Paper]:
    """Newest first by first-version date, then by name."""
    return sorted(papers, key=lambda p: (-p.first_day.toordinal(), p.name.lower(), p.id))

"""Extension points of the site: other parts of the project add pages and paper-page sections here
without editing the site core.

- `PAGE_BUILDERS`: callables `(ctx) -> iterable of (relative_path, text)`. `relative_path` is a path
  inside the docs folder (e.g. "graph/index.md" or "assets/data/graph.json"); `text` is Markdown for
  `.md` files, or the file's content for anything else. `ctx` is a `RenderContext` bound to the site
  root; `ctx.at(relative_path)` gives one bound to your page, whose `paper_url(paper_id)` is the
  relative link from that page.
- `PAPER_SECTIONS`: callables `(ctx, paper) -> markdown or None`; `ctx` is bound to the paper's page.
  A section may instead return finished HTML wrapped in `blocks.region(html, ...)` (it then carries its
  own `<h2>`; the build skips Markdown for it).
  Each non-empty result becomes one section of the paper page, in registration order. A section may
  declare the slot it fills with `register_paper_section(fn, slot=...)` (or a `slot` attribute on the
  function): "citations" (cites / cited by in the catalog), "run" (how to run the method) or
  "results" (measured results). When no section fills a slot for a paper, the page shows a short
  placeholder for it instead.

- `SHARED_DATA`: callables `(ctx) -> None` run once before any page builder, to compute data that
  several builders read (e.g. the citation graph and its layout, kept in `ctx.extra`). Page builders
  may run in parallel worker processes; what is computed here is computed once and shared with all of them.

Modules that register live in one list, `lvlm_atlas.site.plugins.MODULES`.
"""
from __future__ import annotations

from typing import Callable, Iterable

PageBuilder = Callable[..., Iterable[tuple[str, str]]]
PaperSection = Callable[..., "str | None"]

SLOTS = ("citations", "run", "results")

PAGE_BUILDERS: list[PageBuilder] = []
PAPER_SECTIONS: list[PaperSection] = []
SHARED_DATA: list[Callable[..., None]] = []


def register_page_builder(fn: PageBuilder) -> PageBuilder:
    """Add a page builder (usable as a decorator). Registering the same function twice is a no-op."""
    if fn not in PAGE_BUILDERS:
        PAGE_BUILDERS.append(fn)
    return fn


def register_shared_data(fn: Callable[..., None]) -> Callable[..., None]:
    """Add a function `(ctx) -> None` that prepares data shared by page builders (usable as a decorator)."""
    if fn not in SHARED_DATA:
        SHARED_DATA.append(fn)
    return fn


def register_paper_section(fn: PaperSection | None = None, *, slot: str | None = None):
    """Add a paper-page section (usable as `@register_paper_section` or
    `@register_paper_section(slot="citations")`). Registering the same function twice is a no-op."""

    def add(f: PaperSection) -> PaperSection:
        if slot is not None:
            if slot not in SLOTS:
                raise ValueError(f"unknown paper-section slot {slot!r}; use one of {', '.join(SLOTS)}")
            f.slot = slot  # type: ignore[attr-defined]
        if f not in PAPER_SECTIONS:
            PAPER_SECTIONS.append(f)
        return f

    return add(fn) if fn is not None else add


def section_slot(fn: PaperSection) -> str | None:
    return getattr(fn, "slot", None)

"""MkDocs hooks (mkdocs.yml `hooks:`): let generated HTML skip the Markdown converter.

The generator writes large, fully escaped HTML fragments (paper metadata, method tables, paper lists)
between marker comments. Python-Markdown would pass such raw HTML blocks through unchanged anyway,
but it still scans every tag, which made the build several times slower than a plain site. So:

- `<!-- atlas:html:begin -->` ... `<!-- atlas:html:end -->`: lifted out in `on_page_markdown`, put
  back in `on_page_content`; part of the page content, so the search index sees it.
- `<!-- atlas:late:begin -->` ... `<!-- atlas:late:end -->`: lifted out the same way but put back
  only in `on_post_page`, into the finished HTML: for link-heavy blocks (tag lists, BibTeX, tables of
  other papers) that add nothing to search but would cost the search indexer a parse of every tag.

Fragments that follow each other with only blank lines between them are handed back to Markdown as
one slot (a late fragment inside it stays a late slot), so a page made only of fragments costs Python-Markdown
one HTML comment instead of one per fragment.

A page left with nothing but slots (a paper page: front matter plus fragments, its title included as an
HTML heading) with a title in its front matter does not go through Python-Markdown at all: its `render`
is replaced, on that page object only, by one that sets what Markdown would have produced for a lone HTML
comment (the comment itself, no table of contents, no anchors). Building a Markdown converter per page
cost as much as converting it.

Without this hook the page shows the same HTML (MkDocs keeps raw HTML blocks); only the build is
slower and the search index larger. This file must not import the rest of the project (MkDocs loads
it by path).
"""
from __future__ import annotations

import functools
import re

from mkdocs.structure.toc import get_toc

BEGIN = "<!-- atlas:html:begin -->"
END = "<!-- atlas:html:end -->"
LATE_BEGIN = "<!-- atlas:late:begin -->"
LATE_END = "<!-- atlas:late:end -->"
SLOT = "<!-- atlas:slot:{} -->"
LATE_SLOT = "<!-- atlas:late-slot:{} -->"

_content: dict[str, list[str]] = {}
_late: dict[str, list[str]] = {}


def split_fragments(markdown: str, begin: str = BEGIN, end: str = END, slot: str = SLOT) -> tuple[str, list[str]]:
    """(Markdown with each fragment replaced by a slot comment, the fragments in order)."""
    out: list[str] = []
    parts: list[str] = []
    pos = 0
    while True:
        i = markdown.find(begin, pos)
        if i < 0:
            out.append(markdown[pos:])
            break
        j = markdown.find(end, i)
        if j < 0:
            raise ValueError(f"{begin} without {end}")
        out.append(markdown[pos:i])
        out.append("\n" + slot.format(len(parts)) + "\n")
        parts.append(markdown[i + len(begin):j].strip("\n"))
        pos = j + len(end)
    return "".join(out), parts


# SLOT / LATE_SLOT with their "{}" turned into a captured number
_SLOT_PATTERNS = {s: re.compile(re.escape(s).replace(re.escape("{}"), r"(\d+)")) for s in (SLOT, LATE_SLOT)}


def join_fragments(html: str, parts: list[str], slot: str = SLOT) -> str:
    """Put each fragment back at (the first occurrence of) its slot marker, in one pass over the page
    (inserted fragments are not scanned again)."""
    if not parts:
        return html
    used = [False] * len(parts)

    def fill(m: re.Match) -> str:
        k = int(m.group(1))
        if k >= len(parts) or used[k]:
            return m.group(0)
        used[k] = True
        return parts[k]

    html = _SLOT_PATTERNS[slot].sub(fill, html)
    if not all(used):
        raise ValueError(f"{slot.format(used.index(False))} vanished during the build")
    return html


_MARKER = re.compile(r"<!-- atlas:(slot|late-slot):(\d+) -->")


def collapse_slots(markdown: str, parts: list[str]) -> tuple[str, list[str]]:
    """Merge runs of slots separated only by whitespace into one slot: (new Markdown, new fragments).
    Late-slot markers inside a run are kept, as text of the merged fragment."""
    pieces = _MARKER.split(markdown)  # text, kind, index, text, kind, index, ..., text
    out, merged, run = [pieces[0]], [], []
    for i in range(1, len(pieces), 3):
        kind, index, text = pieces[i], int(pieces[i + 1]), pieces[i + 2]
        run.append(parts[index] if kind == "slot" else LATE_SLOT.format(index))
        if text.strip() or i + 3 >= len(pieces):
            out.append(SLOT.format(len(merged)))
            merged.append("\n".join(run))
            run = []
            out.append(text)
    return "".join(out), merged


def lift_fragments(markdown: str) -> tuple[str, list[str], list[str]]:
    """(Markdown left for the converter, fragments for `on_page_content`, fragments for `on_post_page`)."""
    late: list[str] = []
    content: list[str] = []
    if LATE_BEGIN in markdown:  # first, so a late fragment may sit inside a searchable one
        markdown, late = split_fragments(markdown, LATE_BEGIN, LATE_END, LATE_SLOT)
    if BEGIN in markdown:
        markdown, content = split_fragments(markdown)
    if content or late:
        markdown, content = collapse_slots(markdown, content)
    return markdown, content, late


_ONLY_SLOTS = re.compile(r"\s*<!-- atlas:slot:0 -->\s*")


def needs_markdown(markdown: str, page) -> bool:
    """False when the page (after lifting) is a single slot and its title comes from front matter."""
    return not (_ONLY_SLOTS.fullmatch(markdown) and isinstance((page.meta or {}).get("title"), str))


def render_without_markdown(page, config, files) -> None:
    """What `Page.render` produces for a page whose Markdown is one HTML comment line."""
    page.content = page.markdown.strip()
    page.toc = get_toc([])
    page._title_from_render = None
    page.present_anchor_ids = set()
    page.links_to_anchors = {}


def on_page_markdown(markdown, page, config, files):
    key = page.file.src_uri
    markdown, content, late = lift_fragments(markdown)
    if not needs_markdown(markdown, page):
        page.render = functools.partial(render_without_markdown, page)  # this page object only
    if content:
        _content[key] = content
    if late:
        _late[key] = late
    return markdown


def on_page_content(html, page, config, files):
    parts = _content.pop(page.file.src_uri, None)
    return join_fragments(html, parts) if parts else html


def on_post_page(output, page, config):
    parts = _late.pop(page.file.src_uri, None)
    return join_fragments(output, parts, LATE_SLOT) if parts else output

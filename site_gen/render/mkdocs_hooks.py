"""MkDocs hooks (mkdocs.yml `hooks:`): let generated HTML skip the Markdown converter.

The generator writes large, fully escaped HTML fragments (paper metadata, method tables, paper lists)
between marker comments. Python-Markdown would pass such raw HTML blocks through unchanged anyway,
but it still scans every tag, which made the build several times slower than a plain site. So:

- `<!-- atlas:html:begin -->` ... `<!-- atlas:html:end -->`: lifted out in `on_page_markdown`, put
  back in `on_page_content`; part of the page content, so the search index sees it.
- `<!-- atlas:late:begin -->` ... `<!-- atlas:late:end -->`: lifted out the same way but put back
  only in `on_post_page`, into the finished HTML: for link-heavy blocks (tag lists, BibTeX, tables of
  other papers) that add nothing to search but would cost the search indexer a parse of every tag.

Without this hook the page shows the same HTML (MkDocs keeps raw HTML blocks); only the build is
slower and the search index larger. This file must not import the rest of the project (MkDocs loads
it by path).
"""
from __future__ import annotations

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


def join_fragments(html: str, parts: list[str], slot: str = SLOT) -> str:
    for k, part in enumerate(parts):
        marker = slot.format(k)
        if marker not in html:
            raise ValueError(f"{marker} vanished during the build")
        html = html.replace(marker, part, 1)
    return html


def on_page_markdown(markdown, page, config, files):
    key = page.file.src_uri
    if BEGIN in markdown:
        markdown, _content[key] = split_fragments(markdown)
    if LATE_BEGIN in markdown:
        markdown, _late[key] = split_fragments(markdown, LATE_BEGIN, LATE_END, LATE_SLOT)
    return markdown


def on_page_content(html, page, config, files):
    parts = _content.pop(page.file.src_uri, None)
    return join_fragments(html, parts) if parts else html


def on_post_page(output, page, config):
    parts = _late.pop(page.file.src_uri, None)
    return join_fragments(output, parts, LATE_SLOT) if parts else output

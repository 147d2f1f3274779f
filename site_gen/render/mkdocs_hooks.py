"""MkDocs hooks (mkdocs.yml `hooks:`): let generated HTML skip the Markdown converter.

The generator writes large, fully escaped HTML fragments (paper metadata, method tables, paper lists)
between `<!-- atlas:html:begin -->` and `<!-- atlas:html:end -->`. Python-Markdown would pass such
raw HTML blocks through unchanged anyway, but it still scans every tag, which made the build several
times slower than a plain site. `on_page_markdown` lifts the fragments out before conversion and
`on_page_content` puts them back in place afterwards, so the output is the same with or without this
hook; only faster. This file must not import the rest of the project (MkDocs loads it by path).
"""
from __future__ import annotations

BEGIN = "<!-- atlas:html:begin -->"
END = "<!-- atlas:html:end -->"
SLOT = "<!-- atlas:slot:{} -->"

_stash: dict[str, list[str]] = {}


def split_fragments(markdown: str) -> tuple[str, list[str]]:
    """(Markdown with each fragment replaced by a slot comment, the fragments in order)."""
    out: list[str] = []
    parts: list[str] = []
    pos = 0
    while True:
        i = markdown.find(BEGIN, pos)
        if i < 0:
            out.append(markdown[pos:])
            break
        j = markdown.find(END, i)
        if j < 0:
            raise ValueError(f"{BEGIN} without {END}")
        out.append(markdown[pos:i])
        out.append("\n" + SLOT.format(len(parts)) + "\n")
        parts.append(markdown[i + len(BEGIN):j].strip("\n"))
        pos = j + len(END)
    return "".join(out), parts


def join_fragments(html: str, parts: list[str]) -> str:
    for k, part in enumerate(parts):
        slot = SLOT.format(k)
        if slot not in html:
            raise ValueError(f"slot {slot} vanished during Markdown conversion")
        html = html.replace(slot, part, 1)
    return html


def on_page_markdown(markdown, page, config, files):
    if BEGIN not in markdown:
        return markdown
    text, parts = split_fragments(markdown)
    _stash[page.file.src_uri] = parts
    return text


def on_page_content(html, page, config, files):
    parts = _stash.pop(page.file.src_uri, None)
    return join_fragments(html, parts) if parts else html

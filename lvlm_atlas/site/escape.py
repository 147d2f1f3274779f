"""Make catalog text inert in generated Markdown and HTML.

Every string that comes from data (a pull request, arXiv, Semantic Scholar) goes through `esc` before it
reaches a page. `esc` turns HTML-special characters into entities and every character that Markdown,
the enabled Markdown extensions or a template engine could give meaning to into a numeric character
reference, so the text displays as written and never becomes markup, a link, a template expression or
an element. The output is safe both inside Markdown paragraphs/table cells and inside raw HTML blocks
and attribute values.

URLs get a separate check, `safe_href`: only absolute http(s) URLs are ever emitted as links.
"""
from __future__ import annotations

import functools
import html
import json
import re
from urllib.parse import urlsplit

# Characters that mean something anywhere in a line: HTML (& < > " '), Markdown inline syntax
# (\\ ` * _ [ ]), attr_list and template delimiters ({ }), heading closers (#) and table cells (|).
# Each becomes a numeric character reference, which Markdown passes through and browsers display.
_ALWAYS = "&<>\"'\\`*_{}[]#|"
_TABLE = {ord(c): f"&#{ord(c)};" for c in _ALWAYS}
# Characters that only mean something at the start of a line (lists, block quotes, setext/hr, fences,
# definition lists); escaped there, since generated text can start a line.
_LEADING = re.compile(r"^(?:[-+>=~:%!]|\d+[.)])")
_WS = re.compile(r"\s+")

# The Markdown extensions this escaping was reviewed against (mkdocs.yml must not enable others
# without reviewing `esc`; a test checks this).
REVIEWED_EXTENSIONS = frozenset({"tables", "attr_list", "md_in_html", "admonition", "toc"})


def _escape_leading(text: str) -> str:
    m = _LEADING.match(text)
    if not m:
        return text
    lead = m.group(0)
    return lead[:-1] + f"&#{ord(lead[-1])};" + text[len(lead):]


def esc(text: object) -> str:
    """Inert, single-line text: whitespace (newlines included) collapses to one space."""
    if text is None:
        return ""
    return _esc(str(text))


@functools.lru_cache(maxsize=1 << 15)  # labels and names recur on thousands of pages; a pure function
def _esc(text: str) -> str:
    return _escape_leading(_WS.sub(" ", text).strip().translate(_TABLE))


def heading(text: object, level: int = 1) -> str:
    """An HTML heading of inert text, exactly as Python-Markdown renders `# text` with the toc extension
    (its id is the toc extension's slug of the text, `_1` when the slug is empty), so a page can hand its
    title to MkDocs as finished HTML."""
    from markdown.extensions.toc import slugify

    inert = esc(text)
    slug = slugify(html.unescape(inert), "-") or "_1"
    return f'<h{level} id="{slug}">{inert}</h{level}>'


def esc_paragraphs(text: object) -> list[str]:
    """Inert paragraphs: text split on blank lines, each paragraph escaped as one line."""
    if text is None:
        return []
    parts = re.split(r"\n\s*\n", str(text).strip())
    return [esc(p) for p in parts if p.strip()]


def esc_block(text: object) -> str:
    """Inert preformatted text (line breaks kept), for the inside of a raw HTML <pre> element."""
    if text is None:
        return ""
    return str(text).translate(_TABLE).replace("\t", "    ")


def attr(text: object) -> str:
    """A value for a double-quoted HTML attribute (same escaping as `esc`)."""
    return esc(text)


_URL_BREAKERS = re.compile(r"[\s\x00-\x1f]")  # `\s` is str.isspace(): Unicode whitespace included


def safe_href(url: object) -> str | None:
    """The URL escaped for an href attribute, or None unless it is an absolute http(s) URL with a host.

    The schema already rejects other schemes; this is the second line of defence so that no code path
    ever turns a `javascript:` or `data:` string into a link.
    """
    if url is None:
        return None
    s = str(url).strip()
    if _URL_BREAKERS.search(s):
        return None
    try:
        parts = urlsplit(s)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # Percent-encode characters that Markdown tables, code spans or templates would act on, then quote
    # what could close the attribute or start markup; the URL is otherwise kept as written.
    for ch, code in (("{", "%7B"), ("}", "%7D"), ("|", "%7C"), ("`", "%60")):
        s = s.replace(ch, code)
    return html.escape(s, quote=True)


def external_link(text: object, url: object) -> str:
    """An HTML anchor to an external http(s) URL, or the inert text alone when the URL is not allowed."""
    href = safe_href(url)
    if href is None:
        return esc(text)
    return f'<a href="{href}" rel="noopener nofollow">{esc(text)}</a>'


def front_matter_title(text: object) -> str:
    """A YAML front-matter `title:` line. Themes insert page titles into HTML unescaped, so the value is
    already-escaped HTML text; JSON string syntax is valid YAML and quotes everything else."""
    return "title: " + json.dumps(esc(text), ensure_ascii=True)


def code(text: object) -> str:
    """Inert inline code (a raw <code> element: Markdown code spans would show the entities literally)."""
    return f"<code>{esc(text)}</code>"

"""MkDocs hooks (mkdocs.yml `hooks:`): render the theme once for many pages of the same shape.

Thousands of paper pages differ only in their title, content, first heading and canonical URL: they
sit in the same folder, are not in the navigation (no previous/next page, no ancestors) and have the
same front matter apart from the title. Running mkdocs-material's Jinja templates for each of them was
the largest cost of the build after Markdown. So, for such pages:

1. The first page of a shape is rendered twice: normally, and through a copy of the page whose title,
   content, first heading and canonical URL (when `site_url` is set) are unique placeholder strings.
   The second result is the shape's "shell".
2. The shell is kept only if filling it with the first page's own values reproduces the normal
   rendering byte for byte; otherwise that shape is always rendered normally.
3. Every further page of the shape is the shell (split once at its placeholders) joined with its own
   values (one pass, so text in the values is never scanned for placeholders).

Pages that are in the navigation, have an edit URL (repo_url set), a table of contents beyond the
page title, or anything else unusual are rendered normally. The output is the same as without this
hook; only the build is faster. This file must not import the rest of the project (MkDocs loads it by path).
"""
from __future__ import annotations

import copy
import json
import logging
import posixpath
import re

import jinja2
from mkdocs.structure.toc import AnchorLink, TableOfContents

log = logging.getLogger("mkdocs.hooks.atlas_page_cache")

TEMPLATE = "atlas-cached-page.html"
BASE_TEMPLATE = "main.html"
_TITLE = "atlas7c1e-page-title-placeholder"
_CONTENT = "<h1>atlas7c1e-page-content-placeholder</h1>"
_ANCHOR = "atlas7c1e-page-anchor-placeholder"
_CANONICAL = "https://atlas7c1e.invalid/page-canonical-url-placeholder"
_PLACEHOLDERS = re.compile("|".join(re.escape(p) for p in (_TITLE, _CONTENT, _ANCHOR, _CANONICAL)))
_PLACEHOLDERS_SPLIT = re.compile(f"({_PLACEHOLDERS.pattern})")

_shells: dict[tuple, list[str] | None] = {}  # shape -> split shell, or None where it failed its check
stats = {"filled": 0, "rendered": 0}


def shape_of(page) -> tuple | None:
    """What the theme's output depends on apart from title, content and first heading; None when the
    page must be rendered normally."""
    meta = page.meta or {}
    if "title" not in meta or not isinstance(meta["title"], str) or meta.get("template") not in (None, TEMPLATE):
        return None
    if page.is_homepage or page.parent is not None or page.previous_page is not None or page.next_page is not None:
        return None
    if page.edit_url or not page.content or _PLACEHOLDERS.search(page.content):
        return None
    toc = list(page.toc or [])
    if len(toc) > 1 or (toc and (toc[0].level != 1 or toc[0].children)):
        return None
    try:
        rest = json.dumps({k: v for k, v in meta.items() if k not in ("title", "template")}, sort_keys=True)
    except (TypeError, ValueError):
        return None
    url = page.url
    return (posixpath.dirname(url.rstrip("/")), url.endswith("/"), rest, len(toc), "<h1" in page.content,
            bool(page.canonical_url))


def _values(page) -> dict[str, str]:
    toc = list(page.toc or [])
    return {_TITLE: page.meta["title"], _CONTENT: page.content, _ANCHOR: toc[0].id if toc else "",
            _CANONICAL: page.canonical_url or ""}


def _split(shell: str) -> list[str]:
    """The shell as [text, placeholder, text, placeholder, ..., text]: filling it is then one join
    instead of a scan of the whole page for every page."""
    return _PLACEHOLDERS_SPLIT.split(shell)


def _fill(pieces: list[str], values: dict[str, str]) -> str:
    out = pieces[:]
    for i in range(1, len(out), 2):
        out[i] = values[out[i]]
    return "".join(out)


def _placeholder_page(page):
    stand_in = copy.copy(page)
    stand_in.meta = dict(page.meta, title=_TITLE)
    stand_in.content = _CONTENT if "<h1" in page.content else _CONTENT.replace("<h1>", "<p>").replace("</h1>", "</p>")
    toc = list(page.toc or [])
    stand_in.toc = TableOfContents([AnchorLink(_TITLE, _ANCHOR, 1)] if toc else [])
    stand_in.canonical_url = _CANONICAL if page.canonical_url else None
    return stand_in


@jinja2.pass_context
def _render_cached(context) -> str:
    env = context.environment
    page = context["page"]
    base = env.get_template(BASE_TEMPLATE)
    shape = shape_of(page)
    if shape is None:
        stats["rendered"] += 1
        return base.render(context.get_all())
    if shape not in _shells:
        normal = base.render(context.get_all())
        values = _values(page)
        shell = base.render(dict(context.get_all(), page=_placeholder_page(page)))
        pieces = _split(shell)
        ok = shell.count(_CONTENT) == 1 and _fill(pieces, values) == normal
        _shells[shape] = pieces if ok else None
        if not ok:
            log.debug("page shape of %s cannot be cached; its pages are rendered normally", page.file.src_uri)
        stats["rendered"] += 1
        return normal
    shell = _shells[shape]
    if shell is None:
        stats["rendered"] += 1
        return base.render(context.get_all())
    stats["filled"] += 1
    return _fill(shell, _values(page))


def on_env(env, config, files):
    env.loader = jinja2.ChoiceLoader([jinja2.DictLoader({TEMPLATE: "{{ atlas_render_cached() }}"}), env.loader])
    env.globals["atlas_render_cached"] = _render_cached
    _shells.clear()
    stats.update(filled=0, rendered=0)
    return env


def on_page_content(html, page, config, files):
    # MkDocs picks the template before `on_page_context`, so route pages through the cache here (only pages
    # that can have a shape: a key added to empty front matter would change the theme's output)
    if "title" in page.meta and "template" not in page.meta:
        page.meta["template"] = TEMPLATE
    return html

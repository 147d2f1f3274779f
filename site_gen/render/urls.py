"""Where every generated page lives inside the docs folder, and relative links between them.

Paths here are docs-folder paths of Markdown sources ("papers/fastv.md"). Markdown links use
`rel_md` (MkDocs checks and rewrites them); raw HTML and JavaScript use `rel_url`, the final relative
URL, which depends on MkDocs' `use_directory_urls` (on in mkdocs.yml; `USE_DIRECTORY_URLS` must match).
Every link is relative, so the site works at a domain root, under a GitHub Pages sub-path, or locally.
"""
from __future__ import annotations

import posixpath

USE_DIRECTORY_URLS = True


def paper(paper_id: str) -> str:
    return f"papers/{paper_id}.md"


def category(node_id: str) -> str:
    return f"categories/{node_id}/index.md"


def facet_index(facet: str) -> str:
    return f"facets/{facet}/index.md"


def facet_term(facet: str, slug: str) -> str:
    return f"facets/{facet}/{slug}.md"


def method(name: str) -> str:
    return f"methods/{name}.md"


def taxonomy_view(view: str) -> str:
    return f"taxonomy/{view}.md"


def rel_md(from_page: str, target: str) -> str:
    """Relative link from one Markdown source to another (or to any file in the docs folder)."""
    return posixpath.relpath(target, posixpath.dirname(from_page) or ".")


def page_url(md_path: str, directory_urls: bool = USE_DIRECTORY_URLS) -> str:
    """The URL path (relative to the site root) MkDocs gives a file of the docs folder."""
    if not md_path.endswith(".md"):
        return md_path
    stem = md_path[:-3]
    if not directory_urls:
        return stem + ".html"
    if stem == "index":
        return ""
    if stem.endswith("/index"):
        return stem[: -len("index")]
    return stem + "/"


def rel_url(from_page: str, target: str, directory_urls: bool = USE_DIRECTORY_URLS) -> str:
    """Final relative URL from the page built from `from_page` to the file or page `target`."""
    src = page_url(from_page, directory_urls)
    base = src if src.endswith("/") or src == "" else posixpath.dirname(src) + "/"
    dst = page_url(target, directory_urls)
    rel = posixpath.relpath(dst or ".", base.rstrip("/") or ".")
    if rel == ".":
        rel = "./"
    elif (dst == "" or dst.endswith("/")) and not rel.endswith("/"):
        rel += "/"
    return rel


def root_url(from_page: str, directory_urls: bool = USE_DIRECTORY_URLS) -> str:
    """Relative URL from a page to the site root, ending in '/' (or './')."""
    r = rel_url(from_page, "index.md", directory_urls)
    return r if r.endswith("/") else r + "/"

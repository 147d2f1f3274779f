"""Where every generated page lives inside the docs folder, and relative links between them.

Paths here are docs-folder paths of Markdown sources ("papers/fastv.md"). Markdown links use
`rel_md` (MkDocs checks and rewrites them); raw HTML and JavaScript use `rel_url`, the final relative
URL, which depends on MkDocs' `use_directory_urls` (on in mkdocs.yml; `USE_DIRECTORY_URLS` must match).
Every link is relative, so the site works at a domain root, under a GitHub Pages sub-path, or locally.
"""
from __future__ import annotations

import functools
import posixpath

USE_DIRECTORY_URLS = True


def paper(paper_id: str) -> str:
    return f"papers/{paper_id}.md"


def category(node_id: str) -> str:
    return f"categories/{node_id}/index.md"


def facet_index_page() -> str:
    return "facets/index.md"


def facet_index(facet: str) -> str:
    return f"facets/{facet}.md"


def facet_term(facet: str, slug: str) -> str:
    """A term is a section of its facet's page."""
    return f"facets/{facet}.md#{slug}"


def method(name: str) -> str:
    return f"methods/{name}.md"


def taxonomy_view(view: str) -> str:
    return f"taxonomy/{view}.md"


def rel_md(from_page: str, target: str) -> str:
    """Relative link from one Markdown source to another (or to any file in the docs folder); a
    `#fragment` on the target is kept."""
    path, sep, frag = target.partition("#")
    return posixpath.relpath(path, posixpath.dirname(from_page) or ".") + sep + frag


def page_url(md_path: str, directory_urls: bool = USE_DIRECTORY_URLS) -> str:
    """The URL path (relative to the site root) MkDocs gives a file of the docs folder."""
    md_path, sep, frag = md_path.partition("#")
    if sep:
        return page_url(md_path, directory_urls) + "#" + frag
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


@functools.lru_cache(maxsize=4096)
def root_url(from_page: str, directory_urls: bool = USE_DIRECTORY_URLS) -> str:
    """Relative URL from the page built from `from_page` to the site root: '../' per directory level
    of the page's URL, or './' at the root."""
    src = page_url(from_page, directory_urls).partition("#")[0]
    depth = src.count("/")
    return "../" * depth if depth else "./"


def rel_url(from_page: str, target: str, directory_urls: bool = USE_DIRECTORY_URLS) -> str:
    """Final relative URL from the page built from `from_page` to the file or page `target` (through the
    site root, e.g. '../../papers/fastv/': always correct, and cheap enough for thousands of links)."""
    dst = page_url(target, directory_urls)
    root = root_url(from_page, directory_urls)
    if root == "./":
        return dst or "./"
    return root + dst

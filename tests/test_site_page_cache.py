"""The page-shell cache hook (lvlm_atlas/site/mkdocs_page_cache.py) changes build time, not output:
the test site built with and without it is byte-identical, and most paper pages were filled from a shell."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import yaml

from lvlm_atlas import paths
from tests.site_helpers import built_site

CACHE_HOOK = "lvlm_atlas/site/mkdocs_page_cache.py"


def _build(docs: Path, site: Path, with_cache: bool, **config):
    """Build in-process (so the hook module's counters can be read) with the repository's mkdocs.yml."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    from lvlm_atlas.site.mkdocs_config import repo_mkdocs_config

    cfg = repo_mkdocs_config(docs, site, strict=False, **config)
    assert str(paths.ROOT / CACHE_HOOK) in cfg["hooks"], "mkdocs.yml no longer lists the page cache hook"
    cfg["hooks"] = [h for h in cfg["hooks"] if with_cache or h != str(paths.ROOT / CACHE_HOOK)]
    cfg_path = site.parent / f"mkdocs-{'cache' if with_cache else 'plain'}.yml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    logger = logging.getLogger("mkdocs")
    level = logger.level
    logger.setLevel(logging.ERROR)
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    try:
        config = load_config(str(cfg_path))
        build(config)
    finally:
        logger.setLevel(level)
    return next((m for k, m in config.plugins.items() if k.endswith("mkdocs_page_cache.py")), None)


def _files(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    tree = built_site()
    root = tmp_path_factory.mktemp("page-cache")
    hook = _build(tree.docs, root / "cached", with_cache=True)
    _build(tree.docs, root / "plain", with_cache=False)
    return tree, root / "cached", root / "plain", hook


def test_site_is_byte_identical_with_and_without_the_page_cache(two_builds):
    tree, cached, plain, hook = two_builds
    a, b = _files(cached), _files(plain)
    assert sorted(a) == sorted(b)
    different = [name for name in a if a[name] != b[name]]
    assert different == []
    # not vacuous: paper pages (hostile titles included) were filled from a shell, not rendered one by one
    papers = len(tree.catalog.papers)
    assert hook is not None and hook.stats["filled"] >= papers - 2, hook.stats
    hostile = a["papers/hostile-entry/index.html"]
    assert b"&#60;script&#62;alert(&#39;xss-title" in hostile and b"<script>alert('xss-title')" not in hostile


def test_shell_fill_is_one_pass_and_pages_with_placeholders_render_normally():
    from lvlm_atlas.site import mkdocs_page_cache as cache

    shell = f"<title>{cache._TITLE}</title><a href='#{cache._ANCHOR}'></a>{cache._CONTENT}"
    values = {cache._TITLE: cache._CONTENT, cache._CONTENT: "<p>x</p>", cache._ANCHOR: "t"}
    # a value that looks like a placeholder is inserted as text, never expanded again
    assert cache._fill(cache._split(shell), values) == f"<title>{cache._CONTENT}</title><a href='#t'></a><p>x</p>"

    class Page:
        meta = {"title": "T"}
        is_homepage = False
        parent = previous_page = next_page = canonical_url = edit_url = None
        toc = []
        url = "papers/x/"
        content = f"<p>{cache._TITLE}</p>"

    assert cache.shape_of(Page()) is None
    Page.content = "<p>fine</p>"
    assert cache.shape_of(Page()) is not None
    Page.next_page = object()  # pages in the navigation are rendered normally
    assert cache.shape_of(Page()) is None


def test_with_site_url_pages_keep_their_canonical_links_and_404_uses_the_sub_path(tmp_path):
    """The Pages deployment sets site_url (a GitHub Pages sub-path): every page then has its own
    canonical URL, which the shell fills in like the title; output still equals the uncached build, and
    the 404 page (served at any depth) links assets under the sub-path."""
    tree = built_site()
    url = "https://example.org/atlas/"
    hook = _build(tree.docs, tmp_path / "cached", with_cache=True, site_url=url)
    _build(tree.docs, tmp_path / "plain", with_cache=False, site_url=url)
    a, b = _files(tmp_path / "cached"), _files(tmp_path / "plain")
    assert sorted(a) == sorted(b) and [n for n in a if a[n] != b[n]] == []
    assert hook.stats["filled"] >= len(tree.catalog.papers) - 2, hook.stats
    for paper in tree.catalog.papers:
        page = a[f"papers/{paper.id}/index.html"].decode()
        assert f'<link rel="canonical" href="{url}papers/{paper.id}/">' in page
    not_found = a["404.html"].decode()
    assert 'href="/atlas/assets/stylesheets/' in not_found and 'href="/assets/' not in not_found
    assert 'href="/atlas/feed.xml"' in not_found

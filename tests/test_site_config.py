"""mkdocs.yml stays self-contained, fast and consistent with the generator; `atlas build`
works on the real catalog."""
from __future__ import annotations

import argparse

import pytest

import yaml

from lvlm_atlas import paths
from lvlm_atlas.site import urls
from lvlm_atlas.site.escape import REVIEWED_EXTENSIONS
from tests.site_helpers import built_site

CFG = yaml.safe_load((paths.ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _names(entries) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


def test_theme_is_offline_material():
    assert CFG["theme"]["name"] == "material"
    assert CFG["theme"]["font"] is False
    assert "social" not in _names(CFG.get("plugins"))
    for asset in CFG.get("extra_css", []) + CFG.get("extra_javascript", []):
        src = asset if isinstance(asset, str) else asset["path"]
        assert not src.startswith(("http:", "https:", "//")), src
        assert (paths.ROOT / "docs" / src).is_file(), src


def test_markdown_extensions_are_the_reviewed_ones():
    assert _names(CFG["markdown_extensions"]) <= REVIEWED_EXTENSIONS, (
        "a new Markdown extension can give meaning to characters `esc` leaves alone; review "
        "lvlm_atlas/site/escape.py and add it to REVIEWED_EXTENSIONS")


def test_generator_and_config_agree():
    assert CFG["docs_dir"] == "build/docs"
    assert CFG["use_directory_urls"] is urls.USE_DIRECTORY_URLS
    assert CFG.get("strict") is True


def test_paper_pages_are_out_of_the_nav():
    assert "/papers/" in CFG["not_in_nav"]
    flat = yaml.safe_dump(CFG["nav"])
    assert "papers/" not in flat and "categories/" in flat


def test_built_pages_load_nothing_from_other_hosts():
    tree = built_site()
    for page in tree.site.rglob("*.html"):
        raw = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in raw and "fonts.gstatic" not in raw, page
        for tag in ("<script src=\"http", "<link rel=\"stylesheet\" href=\"http", "<script src=\"//"):
            assert tag not in raw, (page, tag)


def test_build_command_generates_the_real_catalog(tmp_path, capsys):
    from lvlm_atlas.catalog.loader import load_catalog
    from lvlm_atlas.cli import build

    out = tmp_path / "docs"
    assert build.run(argparse.Namespace(out=out, site_url="https://example.org/atlas/")) == 0
    catalog = load_catalog()
    for p in catalog.papers:
        assert (out / urls.paper(p.id)).is_file()
    assert "https://example.org/atlas/papers/" in (out / "feed.xml").read_text(encoding="utf-8") or not catalog.papers
    assert f"({len(catalog)} papers)" in capsys.readouterr().out


@pytest.mark.slow
def test_real_catalog_builds_strict(tmp_path):
    """`make site` on the committed catalog: generation, then `mkdocs build --strict` with the real config."""
    import subprocess
    import sys

    from lvlm_atlas.cli import build
    from lvlm_atlas.site.mkdocs_config import write_repo_mkdocs_config

    docs = tmp_path / "docs"
    assert build.run(argparse.Namespace(out=docs, site_url=None)) == 0
    config = write_repo_mkdocs_config(tmp_path / "mkdocs.yml", docs, tmp_path / "site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                             "--site-dir", str(tmp_path / "site")], cwd=paths.ROOT, capture_output=True, text=True,
                            env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "cost-model" / "index.html").is_file()
    assert (tmp_path / "site" / "graph" / "index.html").is_file()

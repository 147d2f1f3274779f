"""Generate the website's Markdown and data files into build/docs (then run `mkdocs build`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from lvlm_atlas import paths
from lvlm_atlas.cli._catalog import catalog_or_report

DEFAULT_OUT = paths.ROOT / "build" / "docs"


class _IgnoreTags(yaml.SafeLoader):
    """mkdocs.yml may use !!python/name tags; we only need plain keys from it."""


_IgnoreTags.add_multi_constructor("", lambda loader, suffix, node: None)


def configured_site_url(mkdocs_yml: Path = paths.ROOT / "mkdocs.yml") -> str | None:
    if not mkdocs_yml.is_file():
        return None
    data = yaml.load(mkdocs_yml.read_text(encoding="utf-8"), Loader=_IgnoreTags) or {}
    url = data.get("site_url")
    return str(url) if url else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="docs folder to write (default: build/docs)")
    parser.add_argument("--site-url", default=None,
                        help="absolute URL the site is published at (for the Atom feed); default: mkdocs.yml site_url")
    parser.add_argument("--workers", type=int, default=None,
                        help="page-builder processes (default: 2 for catalogs of 1,000+ papers on a multi-core "
                             "machine, else 1); the output is the same for any value")


def run(args: argparse.Namespace) -> int:
    from lvlm_atlas.site import build_site
    from lvlm_atlas.site.build import BuildError
    from lvlm_atlas.site.cards import SiteDataError

    catalog = catalog_or_report()
    if catalog is None:
        return 1
    try:
        report = build_site(catalog, args.out, site_url=args.site_url or configured_site_url(),
                            workers=getattr(args, "workers", None))
    except (SiteDataError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {report.pages} pages and {report.files - report.pages} data files to {report.out_dir} "
          f"({len(catalog)} papers)")
    return 0

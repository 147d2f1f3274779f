"""Generate the Markdown sources and data files of the site into the MkDocs docs folder.

Hand-written files from `docs/` are copied first; then every registered page builder writes its
pages. Everything is generated into a temporary sibling folder and swapped in at the end, so an error
never leaves a half-written site, and two runs on the same catalog produce byte-identical output.
"""
from __future__ import annotations

import gc
import os
import posixpath
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..catalog import Catalog
from .cards import load_benchmarks, load_cards
from .context import Indexes, RenderContext
from .plugins import load_plugins
from .registry import PAGE_BUILDERS


class BuildError(Exception):
    """A page builder produced something the site cannot hold (bad path, two builders, one file)."""


@dataclass(frozen=True)
class BuildReport:
    out_dir: Path
    files: int
    pages: int
    seconds: dict[str, float] = field(default_factory=dict)  # per page builder, for benchmarks


def _clean_relpath(rel: str, builder) -> str:
    norm = posixpath.normpath(rel.replace("\\", "/"))
    if rel.startswith("/") or norm.startswith("..") or norm in (".", "") or ":" in norm:
        raise BuildError(f"page builder {builder.__module__}.{builder.__name__} returned an unsafe path {rel!r}; "
                         "return a relative path inside the docs folder, e.g. 'graph/index.md'")
    return norm


def make_context(catalog: Catalog, out_dir: Path, *, repo_root: Path = paths.ROOT,
                 cards_dir: Path | None = None, bench_dir: Path | None = None,
                 site_url: str | None = None) -> RenderContext:
    cards = load_cards(cards_dir if cards_dir is not None else repo_root / "methods" / "cards")
    bench = load_benchmarks(bench_dir if bench_dir is not None else repo_root / "catalog" / "benchmarks")
    return RenderContext(catalog=catalog, out_dir=out_dir, indexes=Indexes(catalog, cards, bench),
                         repo_root=repo_root, site_url=site_url)


@contextmanager
def long_lived_objects_frozen():
    """Keep the objects that exist now (catalog, indexes) out of the garbage collector's passes for the
    duration of the block. They live for the whole build anyway; scanning them again and again made
    generation grow faster than the catalog (the YAML export of 4,000 papers took 3x that of 2,000).
    Restores the collector's state afterwards; does nothing if something else froze objects already."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def build_site(catalog: Catalog, out_dir: Path, *, repo_root: Path = paths.ROOT, docs_src: Path | None = None,
               cards_dir: Path | None = None, bench_dir: Path | None = None,
               site_url: str | None = None) -> BuildReport:
    load_plugins()
    out_dir = Path(out_dir).resolve()
    docs_src = docs_src if docs_src is not None else repo_root / "docs"
    ctx = make_context(catalog, out_dir, repo_root=repo_root, cards_dir=cards_dir, bench_dir=bench_dir,
                       site_url=site_url)
    with long_lived_objects_frozen():
        return _generate(ctx, out_dir, docs_src)


def _generate(ctx: RenderContext, out_dir: Path, docs_src: Path) -> BuildReport:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        written: dict[str, str] = {}
        seconds: dict[str, float] = {}
        folders: set[Path] = set()
        if docs_src.is_dir():
            shutil.copytree(docs_src, tmp, dirs_exist_ok=True)
        for builder in PAGE_BUILDERS:
            started = time.perf_counter()
            for rel, text in builder(ctx):
                rel = _clean_relpath(rel, builder)
                owner = f"{builder.__module__}.{builder.__name__}"
                if rel in written:
                    raise BuildError(f"{rel!r} is written by both {written[rel]} and {owner}; give one of them another path")
                written[rel] = owner
                target = tmp / rel
                if target.parent not in folders:  # thousands of pages share a few folders
                    target.parent.mkdir(parents=True, exist_ok=True)
                    folders.add(target.parent)
                with open(target, "w", encoding="utf-8", newline="\n") as fh:
                    fh.write(text)
            seconds[builder.__name__] = time.perf_counter() - started
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pages = sum(1 for rel in written if rel.endswith(".md"))
    return BuildReport(out_dir=out_dir, files=len(written), pages=pages, seconds=seconds)


def _swap_in(tmp: Path, out_dir: Path) -> None:
    os.chmod(tmp, 0o755)
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / "docs")
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)

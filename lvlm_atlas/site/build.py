"""Generate the Markdown sources and data files of the site into the MkDocs docs folder.

Hand-written files from `docs/` are copied first; shared data (e.g. the citation graph) is computed;
then every registered page builder writes its pages, for large catalogs in two forked worker processes
that inherit the loaded catalog (same files either way; `build_site(..., workers=1)` stays in-process).
Everything is generated into a temporary sibling folder and swapped in at the end, so an error never
leaves a half-written site, and two runs on the same catalog produce byte-identical output.
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import posixpath
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lvlm_atlas import paths
from lvlm_atlas.catalog.loader import Catalog
from lvlm_atlas.catalog.cards import CARDS_DIR
from lvlm_atlas.site.cards import load_benchmarks, load_cards
from lvlm_atlas.site.context import Indexes, RenderContext
from lvlm_atlas.site.plugins import load_plugins
from lvlm_atlas.site.registry import PAGE_BUILDERS, SHARED_DATA


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
    cards = load_cards(cards_dir if cards_dir is not None else CARDS_DIR)
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
               site_url: str | None = None, workers: int | None = None) -> BuildReport:
    """Generate the docs folder for `catalog` into `out_dir` (atomically). `workers`: page-builder
    processes (None: `default_workers`, 1: in this process); the output is the same either way."""
    load_plugins()
    out_dir = Path(out_dir).resolve()
    docs_src = docs_src if docs_src is not None else repo_root / "docs"
    ctx = make_context(catalog, out_dir, repo_root=repo_root, cards_dir=cards_dir, bench_dir=bench_dir,
                       site_url=site_url)
    workers = default_workers(len(catalog.papers)) if workers is None else max(1, int(workers))
    with long_lived_objects_frozen():
        return _generate(ctx, out_dir, docs_src, workers)


def _write_pages(builder, ctx: RenderContext, tmp: Path) -> tuple[list[str], float]:
    """Run one page builder and write its files under `tmp`: (paths written, seconds)."""
    started = time.perf_counter()
    rels: list[str] = []
    seen: set[str] = set()
    folders: set[Path] = set()
    for rel, text in builder(ctx):
        rel = _clean_relpath(rel, builder)
        if rel in seen:
            raise BuildError(f"{rel!r} is written twice by {_owner(builder)}; give each file its own path")
        seen.add(rel)
        rels.append(rel)
        target = tmp / rel
        if target.parent not in folders:  # thousands of pages share a few folders
            target.parent.mkdir(parents=True, exist_ok=True)
            folders.add(target.parent)
        with open(target, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    return rels, time.perf_counter() - started


def _owner(builder) -> str:
    return f"{builder.__module__}.{builder.__name__}"


# Set in the parent just before forking page-builder workers (they inherit it; nothing is pickled but
# the small results).
_FORKED: tuple[RenderContext, Path] | None = None


def _forked_builder(index: int) -> tuple[int, list[str], float]:
    ctx, tmp = _FORKED  # type: ignore[misc]
    return (index, *_write_pages(PAGE_BUILDERS[index], ctx, tmp))


PARALLEL_FROM = 1000  # papers; below this, starting workers costs more than it saves


def default_workers(n_papers: int) -> int:
    """Two worker processes for large catalogs on machines with several cores where `fork` exists (the
    workers inherit the loaded catalog instead of receiving it pickled); otherwise build in-process."""
    if n_papers < PARALLEL_FROM or (os.cpu_count() or 1) < 2 or "fork" not in mp.get_all_start_methods():
        return 1
    return 2


def _run_builders(ctx: RenderContext, tmp: Path, workers: int) -> dict[int, tuple[list[str], float]]:
    global _FORKED
    if workers <= 1:
        return {i: _write_pages(b, ctx, tmp) for i, b in enumerate(PAGE_BUILDERS)}
    results: dict[int, tuple[list[str], float]] = {}
    _FORKED = (ctx, tmp)
    try:
        # builders are handed out one at a time in registration order, so the big one (paper pages)
        # runs on one worker while the other works through the rest
        with mp.get_context("fork").Pool(min(workers, len(PAGE_BUILDERS))) as pool:
            for index, rels, secs in pool.imap_unordered(_forked_builder, range(len(PAGE_BUILDERS)), chunksize=1):
                results[index] = (rels, secs)
    finally:
        _FORKED = None
    return results


def _generate(ctx: RenderContext, out_dir: Path, docs_src: Path, workers: int) -> BuildReport:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        written: dict[str, str] = {}
        seconds: dict[str, float] = {}
        if docs_src.is_dir():
            shutil.copytree(docs_src, tmp, dirs_exist_ok=True)
        started = time.perf_counter()
        for prepare in SHARED_DATA:
            prepare(ctx)
        seconds["shared_data"] = time.perf_counter() - started
        results = _run_builders(ctx, tmp, workers)
        for index, builder in enumerate(PAGE_BUILDERS):  # registration order: the same report either way
            rels, secs = results[index]
            owner = _owner(builder)
            for rel in rels:
                if rel in written:
                    raise BuildError(f"{rel!r} is written by both {written[rel]} and {owner}; "
                                     "give one of them another path")
                written[rel] = owner
            seconds[builder.__name__] = secs
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

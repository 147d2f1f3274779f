"""Scale benchmark of the website build (issue 3, item 4). A script, not a test.

Measures, on the same machine in the same run:
  bare  - mkdocs-material building N one-paragraph pages kept out of the nav (the reference);
  ours  - site generation (load + validate the catalog, render pages) plus `mkdocs build` for
          synthetic catalogs of N and 2N papers.
Prints the times and the two ratios against the goals: ours(N) <= 1.5 x bare(N) and
ours(2N) <= 2.2 x ours(N).

    .venv/bin/python tests/bench/bench_site.py            # N = 2000
    .venv/bin/python tests/bench/bench_site.py --n 500    # quicker look
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from site_gen.catalog import load_catalog  # noqa: E402
from site_gen.render import build_site  # noqa: E402
from site_gen.render.synthetic import write_synthetic_catalog  # noqa: E402
from site_gen.taxonomy import load_taxonomy  # noqa: E402

ENV = dict(os.environ, NO_MKDOCS_2_WARNING="1")


class Clock:
    """Wall time and CPU time (this process plus finished children) of a block of work. On a shared
    machine wall time includes waiting for the CPU; CPU time is the steadier measure."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall0, _cpu() - self.cpu0


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def mkdocs(cfg: Path) -> Clock:
    with Clock() as c:
        proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(cfg)],
                              capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"mkdocs build failed for {cfg}:\n{proc.stdout}\n{proc.stderr}")
    return c


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def bare(work: Path, n: int) -> tuple[Clock, float]:
    docs = work / "docs"
    (docs / "pages").mkdir(parents=True)
    (docs / "index.md").write_text("# Reference\n\nBare mkdocs-material reference site.\n", encoding="utf-8")
    para = ("Visual tokens dominate the cost of vision-language inference, so methods prune, merge or cache "
            "them at the encoding, prefilling or decoding stage while keeping accuracy. ") * 2
    for i in range(n):
        (docs / "pages" / f"p{i:05d}.md").write_text(f"# Page {i}\n\n{para}\n", encoding="utf-8")
    cfg = work / "mkdocs.yml"
    cfg.write_text(yaml.safe_dump({
        "site_name": "bare", "docs_dir": str(docs), "site_dir": str(work / "site"),
        "theme": {"name": "material", "font": False}, "nav": ["index.md"], "not_in_nav": "/pages/",
    }), encoding="utf-8")
    secs = mkdocs(cfg)
    return secs, dir_mb(work / "site")


def ours(work: Path, n: int) -> tuple[Clock, Clock, Clock, float, dict]:
    papers = work / "catalog" / "papers"
    write_synthetic_catalog(papers, n, load_taxonomy(), seed=n)
    with Clock() as t_load:
        catalog = load_catalog(papers)
    with Clock() as t_gen:
        report = build_site(catalog, work / "docs", cards_dir=work / "cards", bench_dir=work / "bench")
    cfg_data = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    cfg_data.update(docs_dir=str(work / "docs"), site_dir=str(work / "site"),
                    hooks=[str(ROOT / h) for h in cfg_data.get("hooks", [])])
    cfg = work / "mkdocs.yml"
    cfg.write_text(yaml.safe_dump(cfg_data, sort_keys=False), encoding="utf-8")
    t_mk = mkdocs(cfg)
    return t_load, t_gen, t_mk, dir_mb(work / "site"), report.seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="papers / pages in the reference run (default 2000)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="atlas-bench-site-"))
    try:
        print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}; work dir {base}")
        t_bare, mb_bare = bare(base / "bare", args.n)
        print(f"bare mkdocs-material, {args.n} one-paragraph pages out of nav: "
              f"{t_bare.wall:6.1f} s wall, {t_bare.cpu:6.1f} s CPU  ({mb_bare:.0f} MB)")
        totals = {}
        for n in (args.n, 2 * args.n):
            t_load, t_gen, t_mk, mb, per_builder = ours(base / f"ours{n}", n)
            wall = t_load.wall + t_gen.wall + t_mk.wall
            cpu = t_load.cpu + t_gen.cpu + t_mk.cpu
            exports = per_builder.get("export_pages", 0.0)
            totals[n] = (wall, cpu, wall - t_load.wall - exports)
            print(f"LVLM Atlas, {n} papers ({mb:.0f} MB):")
            print(f"    load+validate {t_load.wall:5.1f} s wall {t_load.cpu:5.1f} s CPU | generate {t_gen.wall:5.1f} s wall "
                  f"{t_gen.cpu:5.1f} s CPU | mkdocs {t_mk.wall:5.1f} s wall {t_mk.cpu:5.1f} s CPU")
            print(f"    total {wall:6.1f} s wall, {cpu:6.1f} s CPU; of the generation, exports (YAML/JSON/CSV/BibTeX/CSL) "
                  f"took {exports:.1f} s")
            top = sorted(per_builder.items(), key=lambda kv: -kv[1])[:4]
            print("    generation by page builder: " + ", ".join(f"{k} {v:.1f} s" for k, v in top))
        n1, n2 = args.n, 2 * args.n
        for label, i, ref in (("wall", 0, t_bare.wall), ("CPU", 1, t_bare.cpu)):
            r1 = totals[n1][i] / ref
            r2 = totals[n2][i] / totals[n1][i]
            print(f"[{label}] ours({n1}) / bare({n1}) = {r1:.2f} (goal <= 1.5: {'met' if r1 <= 1.5 else 'NOT met'}); "
                  f"ours({n2}) / ours({n1}) = {r2:.2f} (goal <= 2.2: {'met' if r2 <= 2.2 else 'NOT met'})")
        r_site = totals[n1][2] / t_bare.wall
        print(f"[wall, site only: render + mkdocs, without catalog loading and exports] ours({n1}) / bare({n1}) = {r_site:.2f}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

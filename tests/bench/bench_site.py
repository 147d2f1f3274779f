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


def mkdocs(cfg: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(cfg)],
                          capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"mkdocs build failed for {cfg}:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def bare(work: Path, n: int) -> tuple[float, float]:
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


def ours(work: Path, n: int) -> tuple[float, float, float, float, dict]:
    papers = work / "catalog" / "papers"
    write_synthetic_catalog(papers, n, load_taxonomy(), seed=n)
    t = time.perf_counter()
    catalog = load_catalog(papers)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    report = build_site(catalog, work / "docs", cards_dir=work / "cards", bench_dir=work / "bench")
    t_gen = time.perf_counter() - t
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
        print(f"bare mkdocs-material, {args.n} one-paragraph pages out of nav: {t_bare:7.1f} s  ({mb_bare:.0f} MB)")
        results = {}
        for n in (args.n, 2 * args.n):
            t_load, t_gen, t_mk, mb, per_builder = ours(base / f"ours{n}", n)
            total = t_load + t_gen + t_mk
            results[n] = total
            print(f"LVLM Atlas, {n} papers: load+validate {t_load:5.1f} s + generate {t_gen:5.1f} s + "
                  f"mkdocs {t_mk:6.1f} s = {total:7.1f} s  ({mb:.0f} MB)")
            top = sorted(per_builder.items(), key=lambda kv: -kv[1])[:4]
            print("    generation by page builder: " + ", ".join(f"{k} {v:.1f} s" for k, v in top))
        r1 = results[args.n] / t_bare
        r2 = results[2 * args.n] / results[args.n]
        print(f"ratio ours({args.n}) / bare({args.n}) = {r1:.2f}  (goal <= 1.5: {'met' if r1 <= 1.5 else 'NOT met'})")
        print(f"ratio ours({2 * args.n}) / ours({args.n}) = {r2:.2f}  (goal <= 2.2: {'met' if r2 <= 2.2 else 'NOT met'})")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

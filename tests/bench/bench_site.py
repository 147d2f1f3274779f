"""Scale benchmark of the website build (issue 3, item 4). A script, not a test.

Measures, on the same machine in the same run:
  bare  - mkdocs-material building N one-paragraph pages kept out of the nav (the reference);
  ours  - site generation in a fresh Python process (start, imports, load + validate the catalog, render
          pages: what `atlas build` does) plus `mkdocs build`, for synthetic catalogs of
          N and 2N papers.
Prints the times and the two ratios against the goals: ours(N) <= 1.5 x bare(N) and
ours(2N) <= 2.2 x ours(N). This machine is shared, so one build can take 50% longer than the same build a
minute later: the builds run in rounds (bare, ours(N), ours(2N), repeated), and the ratios use the median
of each; the per-round ratios are printed too.

    .venv/bin/python tests/bench/bench_site.py            # N = 2000
    .venv/bin/python tests/bench/bench_site.py --n 500 --repeat 1   # quicker look
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lvlm_atlas.site.mkdocs_config import write_repo_mkdocs_config  # noqa: E402
from lvlm_atlas.site.synthetic import write_synthetic_catalog  # noqa: E402
from lvlm_atlas.catalog.taxonomy import load_taxonomy  # noqa: E402

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


def write_bare(work: Path, n: int) -> Path:
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
    return cfg


def write_ours(work: Path, n: int) -> Path:
    """The synthetic catalog and an mkdocs.yml (the project's, pointed at this work folder)."""
    write_synthetic_catalog(work / "catalog" / "papers", n, load_taxonomy(), seed=n)
    return write_repo_mkdocs_config(work / "mkdocs.yml", work / "docs", work / "site")


# What `atlas build` does, on the benchmark's folders, in a fresh interpreter: the time
# includes starting Python and importing the generator, as it does for a user.
GENERATE = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from lvlm_atlas.catalog.loader import load_catalog
from lvlm_atlas.site import build_site
t1 = time.perf_counter()
work = Path(sys.argv[1])
catalog = load_catalog(work / "catalog" / "papers")
t2 = time.perf_counter()
report = build_site(catalog, work / "docs", cards_dir=work / "cards", bench_dir=work / "bench")
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "load": t2 - t1, "render": t3 - t2, "builders": report.seconds}))
"""


@dataclass
class Run:
    """One build of our site: generation (a fresh `site_gen` process) then `mkdocs build`."""
    gen: Clock
    mk: Clock
    parts: dict  # seconds inside the generator: imports, load (+validate), render, builders

    @property
    def wall(self) -> float:
        return self.gen.wall + self.mk.wall

    @property
    def cpu(self) -> float:
        return self.gen.cpu + self.mk.cpu


def ours(work: Path, cfg: Path) -> Run:
    with Clock() as t_gen:
        proc = subprocess.run([sys.executable, "-c", GENERATE, str(work)], capture_output=True, text=True,
                              cwd=ROOT, env=dict(ENV, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        raise SystemExit(f"site generation failed for {work}:\n{proc.stdout}\n{proc.stderr}")
    t_mk = mkdocs(cfg)
    return Run(t_gen, t_mk, json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="papers / pages in the reference run (default 2000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; each round builds bare(N), ours(N) and ours(2N) one after the other, and the "
                         "ratios use each build's median over the rounds (default 3)")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="where to write the sites (default: the system temp folder). On this shared VM disk writes "
                         "are the noisiest part of a build; a tmpfs such as /dev/shm takes them out for both sides")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args()
    n1, n2 = args.n, 2 * args.n
    base = Path(tempfile.mkdtemp(prefix="atlas-bench-site-", dir=args.work_dir))
    try:
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}; "
              f"work dir {base}")
        bare_cfg = write_bare(base / "bare", n1)
        our_cfg = {n: write_ours(base / f"ours{n}", n) for n in (n1, n2)}
        bares: list[Clock] = []
        runs: dict[int, list[Run]] = {n1: [], n2: []}
        for r in range(args.repeat):
            bares.append(mkdocs(bare_cfg))
            for n in (n1, n2):
                runs[n].append(ours(base / f"ours{n}", our_cfg[n]))
            print(f"round {r + 1}: bare({n1}) {bares[-1].wall:5.1f} s | ours({n1}) {runs[n1][-1].wall:5.1f} s | "
                  f"ours({n2}) {runs[n2][-1].wall:5.1f} s  (wall; load average {os.getloadavg()[0]:.2f})")
        mb_bare = dir_mb(base / "bare" / "site")
        print(f"bare mkdocs-material, {n1} one-paragraph pages out of nav ({mb_bare:.0f} MB): median "
              f"{median(c.wall for c in bares):6.1f} s wall, {median(c.cpu for c in bares):6.1f} s CPU")
        for n in (n1, n2):
            rs = runs[n]
            mb = dir_mb(base / f"ours{n}" / "site")
            print(f"LVLM Atlas, {n} papers ({mb:.0f} MB), medians:")
            part = {k: median(r.parts[k] for r in rs) for k in ("imports", "load", "render")}
            print(f"    generate {median(r.gen.wall for r in rs):5.1f} s wall {median(r.gen.cpu for r in rs):5.1f} s CPU "
                  f"(interpreter start + imports {part['imports']:.1f} s, load+validate {part['load']:.1f} s, "
                  f"render {part['render']:.1f} s) | mkdocs {median(r.mk.wall for r in rs):5.1f} s wall "
                  f"{median(r.mk.cpu for r in rs):5.1f} s CPU")
            builders = {k: median(r.parts["builders"].get(k, 0.0) for r in rs) for k in rs[0].parts["builders"]}
            print(f"    total {median(r.wall for r in rs):6.1f} s wall, {median(r.cpu for r in rs):6.1f} s CPU; "
                  f"of the generation, exports (YAML/JSON/CSV/BibTeX/CSL) took {builders.get('export_pages', 0.0):.1f} s")
            top = sorted(builders.items(), key=lambda kv: -kv[1])[:4]
            print("    render by page builder: " + ", ".join(f"{k} {v:.1f} s" for k, v in top))
        for label, key in (("wall", "wall"), ("CPU", "cpu")):
            ref = median(getattr(c, key) for c in bares)
            t1 = median(getattr(r, key) for r in runs[n1])
            t2 = median(getattr(r, key) for r in runs[n2])
            r1, r2 = t1 / ref, t2 / t1
            print(f"[{label}, medians] ours({n1}) / bare({n1}) = {r1:.2f} (goal <= 1.5: {'met' if r1 <= 1.5 else 'NOT met'}); "
                  f"ours({n2}) / ours({n1}) = {r2:.2f} (goal <= 2.2: {'met' if r2 <= 2.2 else 'NOT met'})")
        per_round = [(o.wall / b.wall, t.wall / o.wall) for b, o, t in zip(bares, runs[n1], runs[n2])]
        print("[wall, each round] ours/bare: " + ", ".join(f"{a:.2f}" for a, _ in per_round)
              + f"; ours({n2})/ours({n1}): " + ", ".join(f"{b:.2f}" for _, b in per_round))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

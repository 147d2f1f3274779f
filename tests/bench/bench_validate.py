"""Benchmark: validate a synthetic catalog of N papers (default 10,000). Goal: <= 3 s on a 2-core machine.

Run: .venv/bin/python tests/bench/bench_validate.py [N]
Prints the wall time of a full `validate_catalog` run (file reads, strict YAML, schema, cross-file checks).
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lvlm_atlas.catalog.taxonomy import load_taxonomy  # noqa: E402
from lvlm_atlas.catalog.validate import validate_catalog  # noqa: E402
from tests.catalog_factory import make_catalog  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its finished worker processes (validation may use several)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        papers = make_catalog(Path(tmp) / "papers", n)
        tax = load_taxonomy()
        validate_catalog(papers, tax)  # warm the page cache and imports
        start, cpu_start = time.perf_counter(), _cpu()
        report = validate_catalog(papers, tax)
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu_start
    print(f"validated {report.files} files ({len(report.papers)} valid, {len(report.problems)} problems) "
          f"in {elapsed:.2f} s wall, {cpu:.2f} s CPU in all processes ({cpu / n * 1e6:.0f} us/paper); "
          f"goal <= 3 s wall for 10,000 (machine load average now {os.getloadavg()[0]:.1f})")
    if report.problems:
        print("unexpected problems:", *report.problems[:5], sep="\n")
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Benchmark: validate a synthetic catalog of N papers (default 10,000). Goal: <= 3 s on a 2-core machine.

Run: .venv/bin/python tests/bench/bench_validate.py [N]
Prints the wall time of a full `validate_catalog` run (file reads, strict YAML, schema, cross-file checks).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from site_gen.taxonomy import load_taxonomy  # noqa: E402
from site_gen.validate import validate_catalog  # noqa: E402
from tests.catalog_factory import make_catalog  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        papers = make_catalog(Path(tmp) / "papers", n)
        tax = load_taxonomy()
        validate_catalog(papers, tax)  # warm the page cache and imports
        start = time.perf_counter()
        report = validate_catalog(papers, tax)
        elapsed = time.perf_counter() - start
    print(f"validated {report.files} files ({len(report.papers)} valid, {len(report.problems)} problems) "
          f"in {elapsed:.2f} s ({elapsed / n * 1e6:.0f} us/paper); goal <= 3 s for 10,000")
    if report.problems:
        print("unexpected problems:", *report.problems[:5], sep="\n")
        sys.exit(1)


if __name__ == "__main__":
    main()

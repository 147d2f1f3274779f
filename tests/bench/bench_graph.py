"""Benchmark (a script, not a test): citation graph, PageRank, layout and related-paper lists for a
synthetic catalog with random reference lists. Usage: .venv/bin/python tests/bench/bench_graph.py [N]"""
from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from graph_catalogs import catalog, paper  # noqa: E402
from lvlm_atlas.enrich.store import Store  # noqa: E402
from lvlm_atlas.graph.citations import build_graph  # noqa: E402
from lvlm_atlas.graph.layout import layout  # noqa: E402

NODES = ("encoding/vision-encoders", "prefilling/token-compression/attention-guided",
         "decoding/kv-cache-compression/token-level", "system/serving")


def main(n: int) -> None:
    rng = random.Random(0)
    cat = catalog(*(paper(f"p{i}", arxiv=f"24{(i % 12) + 1:02d}.{i:05d}", node=NODES[i % 4]) for i in range(n)))
    store = Store(papers={f"p{i}": {
        "query": f"ARXIV:x{i}", "s2_id": hashlib.sha1(str(i).encode()).hexdigest(), "citation_count": 1,
        "influential_citation_count": 0, "reference_count": 5, "fetched": "2026-11-21",
        "references": {"catalog": sorted({f"p{rng.randrange(n)}" for _ in range(3)} - {f"p{i}"}),
                       "external": sorted({f"ARXIV:19{rng.randrange(100):02d}.{rng.randrange(99999):05d}" for _ in range(2)})},
    } for i in range(n)})
    t0 = time.perf_counter()
    cg = build_graph(cat, store)
    t1 = time.perf_counter()
    cg.pagerank()
    t2 = time.perf_counter()
    g = cg.graph
    layout(sorted(g.nodes), sorted(g.edges), {v: g.nodes[v]["stage"] or "" for v in g.nodes})
    t3 = time.perf_counter()
    for v in g.nodes:
        cg.related(v)
    t4 = time.perf_counter()
    print(f"papers={n} edges={g.number_of_edges()}: build {t1 - t0:.2f}s, pagerank {t2 - t1:.2f}s, "
          f"layout {t3 - t2:.2f}s, related for every paper {t4 - t3:.2f}s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)

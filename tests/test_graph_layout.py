"""The build-time layout: reproducible, bounded, and it actually pulls linked nodes together."""
from __future__ import annotations

import math
import random

import networkx as nx

from lvlm_atlas.graph.layout import layout


def _two_cliques():
    g = nx.DiGraph()
    for base in (0, 10):
        g.add_edges_from((base + i, base + j) for i in range(8) for j in range(8) if i < j)
    g.add_edge(0, 10)
    return g


def test_reproducible_and_bounded():
    g = nx.gnm_random_graph(300, 600, seed=3, directed=True)
    groups = {n: "abcd"[n % 4] for n in g}
    a = layout(list(g.nodes), g.edges, groups)
    b = layout(list(g.nodes), g.edges, groups)
    assert a == b
    xs = [x for x, _ in a.values()]
    ys = [y for _, y in a.values()]
    assert min(min(xs), min(ys)) >= 0 and max(max(xs), max(ys)) <= 1000
    assert len(set(a.values())) == 300  # no two nodes stacked on the same spot


def test_linked_nodes_end_up_closer_than_unlinked():
    g = _two_cliques()
    pos = layout(list(g.nodes), g.edges)
    d = lambda u, v: math.dist(pos[u], pos[v])  # noqa: E731
    within = [d(u, v) for u, v in g.edges if (u < 10) == (v < 10)]
    across = [d(u, v) for u in range(8) for v in range(10, 18)]
    assert sum(within) / len(within) < 0.6 * sum(across) / len(across)


def test_groups_are_kept_apart():
    nodes = list(range(200))
    groups = {n: "left" if n < 100 else "right" for n in nodes}
    pos = layout(nodes, [], groups)
    rnd = random.Random(0)
    same = [math.dist(pos[a], pos[b]) for a, b in (rnd.sample(range(100), 2) for _ in range(200))]
    cross = [math.dist(pos[rnd.randrange(100)], pos[100 + rnd.randrange(100)]) for _ in range(200)]
    assert sum(same) / len(same) < sum(cross) / len(cross)


def test_degenerate_inputs():
    assert layout([], []) == {}
    assert layout(["only"], []) == {"only": (500.0, 500.0)}
    pos = layout(["a", "b"], [("a", "b"), ("a", "missing"), ("a", "a")])
    assert set(pos) == {"a", "b"}

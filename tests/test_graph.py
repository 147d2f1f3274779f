"""Citation-graph analytics on small hand-made graphs with answers worked out by hand."""
from __future__ import annotations

import hashlib

import pytest

from graph_catalogs import catalog, paper
from lvlm_atlas.enrich.store import Store
from lvlm_atlas.graph.citations import BUILDS_ON, CITES, build_graph

ENC = "encoding/vision-encoders"


def record(pid: str, catalog_refs=(), external=()) -> dict:
    return {"query": f"S2:{pid}", "s2_id": hashlib.sha1(pid.encode()).hexdigest(), "citation_count": 1,
            "influential_citation_count": 0, "reference_count": 0,
            "references": {"catalog": list(catalog_refs), "external": list(external)}, "fetched": "2026-11-21"}


@pytest.fixture(scope="module")
def cg():
    cat = catalog(
        paper("a", arxiv="2301.00001"),
        paper("b", arxiv="2302.00002", builds_on=["a"]),
        paper("c", arxiv="2303.00003", builds_on=["b"]),
        paper("d", arxiv="2304.00004", builds_on=["a"], node=ENC),
        paper("e", arxiv="2305.00005", node=ENC),
        paper("f", arxiv="2401.00005"),
    )
    store = Store(papers={
        "b": record("b", external=["ARXIV:1706.03762", "DOI:10.1/y"]),
        # c cites a (in the catalog at fetch time) and f, which joined the catalog later (external then)
        "c": record("c", catalog_refs=["a"], external=["ARXIV:1706.03762", "ARXIV:2401.00005"]),
        "d": record("d", catalog_refs=["a", "b"], external=["ARXIV:1706.03762"]),
        "gone": record("gone", catalog_refs=["a"]),  # left the catalog: ignored
    })
    return build_graph(cat, store)


def test_edges_and_their_sources(cg):
    assert sorted(cg.graph.edges) == [("b", "a"), ("c", "a"), ("c", "b"), ("c", "f"), ("d", "a"), ("d", "b")]
    assert cg.edge_sources("c", "b") == (BUILDS_ON,)
    assert cg.edge_sources("c", "a") == (CITES,)
    assert cg.edge_sources("d", "a") == (BUILDS_ON, CITES)
    assert cg.edge_sources("c", "f") == (CITES,)  # re-resolved against the current catalog
    assert cg.enriched == frozenset({"b", "c", "d"})


def test_degrees_most_cited_and_neighbours(cg):
    assert cg.cites("c") == ["a", "b", "f"]
    assert cg.cited_by("a") == ["b", "c", "d"]
    assert cg.most_cited(3) == [("a", 3), ("b", 2), ("f", 1)]
    assert cg.out_degree()["d"] == 2 and cg.in_degree()["e"] == 0


def test_components_and_stage_subgraphs(cg):
    assert cg.components() == [["a", "b", "c", "d", "f"], ["e"]]
    enc = cg.stage_subgraph("encoding")
    assert sorted(enc.nodes) == ["d", "e"] and enc.number_of_edges() == 0
    pre = cg.stage_subgraph("prefilling")
    assert sorted(pre.edges) == [("b", "a"), ("c", "a"), ("c", "b"), ("c", "f")]


def test_lineage_and_descendants(cg):
    assert cg.lineage("c") == ["c", "b", "a"]
    assert cg.lineage("d") == ["d", "a"]
    assert cg.lineage("a") == ["a"]
    assert cg.lineage_chains(min_length=3) == [["c", "b", "a"]]
    assert cg.lineage_chains(min_length=2) == [["c", "b", "a"], ["d", "a"]]
    assert cg.descendants("a") == ["b", "c", "d"]
    assert cg.descendants("b") == ["c", "d"]


def test_related_by_cocitation_and_coupling(cg):
    # b is cited by c and d, which both also cite a (co-citation 2) and c also cites f (1).
    # b's references {a, 1706.03762, 10.1/y}; c's {a, b, f, 1706.03762} -> shares 2; d's {a, b, 1706.03762} -> 2.
    assert cg.related("b") == [("a", 2, 0), ("c", 0, 2), ("d", 0, 2), ("f", 1, 0)]
    # e is isolated: nothing related
    assert cg.related("e") == []


def test_pagerank_on_a_star_matches_the_closed_form():
    cg = build_graph(catalog(paper("hub", arxiv="2301.00001"),
                             paper("l1", arxiv="2302.00001", builds_on=["hub"]),
                             paper("l2", arxiv="2302.00002", builds_on=["hub"])))
    pr = cg.pagerank(alpha=0.85)
    # leaves x, hub y (dangling, spreads evenly): x = .05 + .85y/3, y = .05 + 1.7x + .85y/3
    y = 0.135 / 0.235
    x = 0.05 + 0.85 * y / 3
    assert pr["hub"] == pytest.approx(y, abs=1e-8)
    assert pr["l1"] == pytest.approx(x, abs=1e-8) and pr["l2"] == pytest.approx(x, abs=1e-8)


def test_pagerank_matches_networkx_on_a_random_graph():
    import random

    import networkx as nx

    from lvlm_atlas.graph.citations import pagerank

    rng = random.Random(5)
    g = nx.DiGraph()
    g.add_nodes_from(f"n{i}" for i in range(300))  # some stay isolated, many are dangling
    g.add_edges_from((f"n{rng.randrange(300)}", f"n{rng.randrange(300)}") for _ in range(700))
    ours, ref = pagerank(g), nx.pagerank(g, alpha=0.85, tol=1e-10, max_iter=500)
    assert list(ours) == list(ref)
    assert max(abs(ours[k] - ref[k]) for k in ref) < 1e-9
    assert pagerank(nx.DiGraph()) == {}


def test_builds_on_cycle_does_not_hang():
    cg = build_graph(catalog(paper("x", arxiv="2301.00001", builds_on=["y"]),
                             paper("y", arxiv="2301.00002", builds_on=["x"])))
    assert cg.lineage("x") == ["x", "y"]
    assert cg.lineage_chains(min_length=2) == []  # no paper is a head of a cycle-only chain


def test_candidates_can_be_left_out():
    cat = catalog(paper("a", arxiv="2301.00001"),
                  paper("cand", arxiv="2302.00001", builds_on=["a"], source="arxiv-ingest", candidate=True))
    assert sorted(build_graph(cat).graph.nodes) == ["a", "cand"]
    assert sorted(build_graph(cat, include_candidates=False).graph.nodes) == ["a"]

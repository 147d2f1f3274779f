"""The citation graph of the catalog (networkx) and its analytics.

Nodes are catalog papers. A directed edge u -> v means "u cites v" (from the Semantic Scholar
enrichment data) or "u builds on v" (curated `builds_on` in the paper file); each edge carries the set of
its sources. References outside the catalog are not nodes, but they count for bibliographic coupling.

Everything here is deterministic: ties are broken by paper id.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

import networkx as nx

from lvlm_atlas.catalog.loader import Catalog
from lvlm_atlas.catalog.results import comparisons
from lvlm_atlas.enrich.records import IdIndex, reresolve
from lvlm_atlas.enrich.store import Store

CITES = "s2"            # edge source: Semantic Scholar reference lists
BUILDS_ON = "builds_on"  # edge source: curated builds_on
COMPARES = "compares"    # edge source: a baseline the paper re-ran in its reported tables (catalog/results/)


def pagerank(graph: nx.DiGraph, alpha: float = 0.85, tol: float = 1e-10, max_iter: int = 500) -> dict:
    """PageRank of an unweighted directed graph by power iteration, as `nx.pagerank` computes it (uniform
    teleport, dangling nodes spread evenly, stop when the L1 change is below n * tol), in plain numpy:
    networkx's version imports scipy.sparse, which cost more than the whole computation."""
    import numpy as np

    nodes = list(graph)
    n = len(nodes)
    if n == 0:
        return {}
    index = {node: i for i, node in enumerate(nodes)}
    src = np.fromiter((index[u] for u, _ in graph.edges), dtype=np.int64, count=graph.number_of_edges())
    dst = np.fromiter((index[v] for _, v in graph.edges), dtype=np.int64, count=graph.number_of_edges())
    out_degree = np.bincount(src, minlength=n).astype(float)
    dangling = out_degree == 0
    share = np.divide(1.0, out_degree, out=np.zeros(n), where=~dangling)
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        last = x
        x = alpha * (np.bincount(dst, weights=(last * share)[src], minlength=n) + last[dangling].sum() / n) + (1 - alpha) / n
        if np.abs(x - last).sum() < n * tol:
            return dict(zip(nodes, map(float, x)))
    raise nx.PowerIterationFailedConvergence(max_iter)


@dataclass
class CitationGraph:
    graph: nx.DiGraph
    external_refs: dict[str, frozenset[str]] = field(default_factory=dict)  # paper -> non-catalog refs
    enriched: frozenset[str] = frozenset()  # papers with Semantic Scholar reference data

    # ---- basic relations ----
    def cites(self, pid: str) -> list[str]:
        return sorted(self.graph.successors(pid))

    def cited_by(self, pid: str) -> list[str]:
        return sorted(self.graph.predecessors(pid))

    def edge_sources(self, u: str, v: str) -> tuple[str, ...]:
        return tuple(sorted(self.graph.edges[u, v]["sources"]))

    # ---- centrality ----
    def pagerank(self, alpha: float = 0.85) -> dict[str, float]:
        """PageRank within the catalog: a paper ranks high when well-ranked papers cite it."""
        return pagerank(self.graph, alpha=alpha)

    def in_degree(self) -> dict[str, int]:
        return dict(self.graph.in_degree())

    def out_degree(self) -> dict[str, int]:
        return dict(self.graph.out_degree())

    def most_cited(self, n: int = 10) -> list[tuple[str, int]]:
        """Papers most cited from inside the catalog, as (id, count), ties by id."""
        return sorted(self.in_degree().items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    # ---- structure ----
    def components(self) -> list[list[str]]:
        """Weakly connected components, largest first (ties by first id), ids sorted."""
        comps = [sorted(c) for c in nx.weakly_connected_components(self.graph)]
        return sorted(comps, key=lambda c: (-len(c), c[0]))

    def stage_subgraph(self, stage: str) -> nx.DiGraph:
        """Papers whose primary placement is in `stage`, with the edges among them."""
        return self.graph.subgraph([n for n, d in self.graph.nodes(data=True) if d["stage"] == stage]).copy()

    @cached_property
    def _builds_on(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.graph.nodes)
        g.add_edges_from((u, v) for u, v, s in self.graph.edges(data="sources") if BUILDS_ON in s)
        return g

    def builds_on_graph(self) -> nx.DiGraph:
        """Only the curated builds_on edges (computed once; the graph does not change after building)."""
        return self._builds_on

    def descendants(self, pid: str) -> list[str]:
        """Every paper that cites or builds on `pid`, directly or through others ("what builds on X")."""
        return sorted(nx.ancestors(self.graph, pid))

    def lineage(self, pid: str) -> list[str]:
        """The longest chain of curated `builds_on` steps back from `pid`: [pid, parent, grandparent, ...].
        Ties go to the alphabetically first parent."""
        g = self.builds_on_graph()
        best: dict[str, list[str]] = {}

        def chain(n: str, stack: frozenset) -> list[str]:
            if n in best:
                return best[n]
            options = [chain(p, stack | {n}) for p in sorted(g.successors(n)) if p not in stack]
            longest = max(options, key=len, default=[])  # max keeps the first of equal lengths
            best[n] = [n] + longest
            return best[n]

        return chain(pid, frozenset())

    def lineage_chains(self, min_length: int = 3) -> list[list[str]]:
        """Maximal `builds_on` chains (newest first) of at least `min_length` papers, longest first."""
        g = self.builds_on_graph()
        heads = [n for n in g.nodes if g.in_degree(n) == 0 and g.out_degree(n) > 0]
        chains = {tuple(self.lineage(h)) for h in heads}
        return sorted((list(c) for c in chains if len(c) >= min_length), key=lambda c: (-len(c), c))

    # ---- related papers ----
    def references_of(self, pid: str) -> frozenset[str]:
        """All references of a paper: catalog ids and external ids (for coupling)."""
        return frozenset(self.graph.successors(pid)) | self.external_refs.get(pid, frozenset())

    @cached_property
    def _holders(self) -> dict[str, list[str]]:
        """reference (catalog or external id) -> the papers that cite it (inverted index for coupling)."""
        out: dict[str, list[str]] = {}
        for paper in sorted(self.graph.nodes):
            for ref in self.references_of(paper):
                out.setdefault(ref, []).append(paper)
        return out

    def related(self, pid: str, n: int = 10) -> list[tuple[str, int, int]]:
        """Papers related to `pid` as (id, co-citations, shared references), best first.

        Co-citation: how many papers cite both. Bibliographic coupling: how many references (inside the
        catalog or not) both share. Score is their sum; ties by id."""
        cocite: Counter[str] = Counter()
        for citer in self.graph.predecessors(pid):
            for other in self.graph.successors(citer):
                if other != pid:
                    cocite[other] += 1
        coupling: Counter[str] = Counter()
        for ref in self.references_of(pid):
            for other in self._holders.get(ref, ()):
                if other != pid:
                    coupling[other] += 1
        rows = [(o, cocite[o], coupling[o]) for o in set(cocite) | set(coupling)]
        return sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0]))[:n]


def build_graph(catalog: Catalog, store: Store | None = None, *, include_candidates: bool = True) -> CitationGraph:
    """The graph of `catalog`, with Semantic Scholar references from `store` and curated builds_on.

    Stored references are re-resolved against the current catalog, so a paper added after the last
    enrichment run gets the edges that point at it without a new fetch."""
    g = nx.DiGraph()
    papers = [p for p in catalog.papers if include_candidates or not p.candidate]
    ids = {p.id for p in papers}
    tax = catalog.taxonomy
    for p in papers:
        g.add_node(p.id, name=p.name, title=p.title, year=p.year, kind=p.kind,
                   stage=tax.node_by_id[p.primary_node].stage, node=p.primary_node,
                   candidate=p.candidate)

    def add(u: str, v: str, source: str) -> None:
        if u == v or v not in ids:
            return
        if g.has_edge(u, v):
            g.edges[u, v]["sources"].add(source)
        else:
            g.add_edge(u, v, sources={source})

    external: dict[str, frozenset[str]] = {}
    enriched: set[str] = set()
    if store is not None:
        index = IdIndex.build(papers, {pid: r["s2_id"] for pid, r in store.papers.items()})
        for pid, rec in sorted(store.papers.items()):
            if pid not in ids:
                continue
            refs = reresolve(rec["references"], index, pid, ids)
            enriched.add(pid)
            for v in refs["catalog"]:
                add(pid, v, CITES)
            external[pid] = frozenset(refs["external"])
    for p in papers:
        for v in p.builds_on:
            add(p.id, v, BUILDS_ON)
    for u, v in sorted(comparisons(catalog.results)):
        if u in ids:
            add(u, v, COMPARES)
    return CitationGraph(graph=g, external_refs=external, enriched=frozenset(enriched))


def summary_lines(cg: CitationGraph, catalog: Catalog, top: int = 10) -> Iterable[str]:
    g = cg.graph
    n_s2 = sum(1 for *_, s in g.edges(data="sources") if CITES in s)
    n_bo = sum(1 for *_, s in g.edges(data="sources") if BUILDS_ON in s)
    n_cmp = sum(1 for *_, s in g.edges(data="sources") if COMPARES in s)
    yield f"papers: {g.number_of_nodes()}; with Semantic Scholar references: {len(cg.enriched)}"
    yield (f"edges: {g.number_of_edges()} ({n_s2} from reference lists, {n_bo} curated builds_on, "
           f"{n_cmp} comparisons in reported tables)")
    comps = cg.components()
    linked = [c for c in comps if len(c) > 1]
    yield (f"weakly connected components: {len(comps)} ({len(linked)} with 2+ papers; "
           f"largest {len(comps[0]) if comps else 0})")
    for stage in catalog.taxonomy.stage_ids:
        sub = cg.stage_subgraph(stage)
        yield f"  stage {stage}: {sub.number_of_nodes()} papers, {sub.number_of_edges()} edges inside the stage"
    unstaged = sum(1 for _, s in g.nodes(data="stage") if not s)
    if unstaged:
        yield f"  no stage (models, benchmarks, surveys): {unstaged} papers"
    pr = cg.pagerank()
    yield f"top {top} by PageRank within the catalog:"
    for pid, score in sorted(pr.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
        yield f"  {score:.4f}  {pid}  (cited by {g.in_degree(pid)}, cites {g.out_degree(pid)})"
    yield "most cited inside the catalog:"
    for pid, count in cg.most_cited(top):
        if count:
            yield f"  {count:4d}  {pid}"
    chains = cg.lineage_chains()
    yield f"builds_on lineage chains (3+ papers): {len(chains)}"
    for c in chains[:top]:
        yield "  " + " -> ".join(c)

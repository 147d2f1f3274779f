"""`RenderContext`: what every page builder and paper section receives.

It carries the validated catalog, the output folder, method cards and measured results, derived
indexes (papers per taxonomy node and per facet term), and link helpers relative to the page being
written. `ctx.at(path)` returns the same context bound to another page; the indexes are shared.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lvlm_atlas.catalog.loader import Catalog
from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.site import urls
from lvlm_atlas.site.cards import BenchmarkRun, MethodCard
from lvlm_atlas.site.escape import esc, external_link, safe_href
from lvlm_atlas.site.facets import Facet, FacetTerm, build_facets


class Indexes:
    """Lookups derived once from the catalog (data flows one way: catalog -> indexes -> pages)."""

    def __init__(self, catalog: Catalog, cards: dict[str, MethodCard], benchmarks: list[BenchmarkRun]):
        self.catalog = catalog
        self.cards = cards
        self.benchmarks = benchmarks
        tax = catalog.taxonomy
        self._subtree: dict[str, list[Paper]] = {}
        self.direct: dict[str, list[Paper]] = defaultdict(list)
        for p in catalog.papers:
            for node in {pl.node for pl in p.placements} | set(p.dimension_nodes(tax)):
                self.direct[node].append(p)
        self.facets: list[Facet] = build_facets(tax, self.runnable)
        self.facet_terms: dict[str, list[tuple[FacetTerm, list[Paper]]]] = {}
        self.paper_terms: dict[str, dict[str, list[FacetTerm]]] = defaultdict(dict)
        for f in self.facets:
            groups: dict[str, list[Paper]] = {}
            first: dict[str, FacetTerm] = {}
            for p in catalog.papers:
                terms = f.terms_of(p)
                self.paper_terms[p.id][f.id] = terms
                for t in terms:
                    first.setdefault(t.slug, t)
                    groups.setdefault(t.slug, []).append(p)
            ordered = sorted(first.values(), key=f.order) if f.order else list(first.values())
            self.facet_terms[f.id] = [(t, groups[t.slug]) for t in ordered]

    def runnable(self, paper: Paper) -> bool:
        return paper.method is not None

    def card_for(self, paper: Paper) -> MethodCard | None:
        if paper.method and paper.method in self.cards:
            return self.cards[paper.method]
        return None

    def results_for(self, method: str) -> list[tuple[dict, dict]]:
        """(result, provenance) pairs measured for a method, in file order."""
        return [(r, run.provenance) for run in self.benchmarks for r in run.results if r.get("method") == method]

    def subtree(self, node_id: str) -> list[Paper]:
        """Papers placed on the node or any descendant, in catalog order, without repeats."""
        if node_id in self._subtree:
            return self._subtree[node_id]
        tax = self.catalog.taxonomy
        prefix = node_id + "/"
        nodes = [n.id for n in tax.nodes if n.id == node_id or n.id.startswith(prefix)]
        found: dict[str, Paper] = {}
        for n in nodes:
            for p in self.direct.get(n, []):
                found.setdefault(p.id, p)
        order = self._catalog_order
        self._subtree[node_id] = sorted(found.values(), key=lambda p: order[p.id])
        return self._subtree[node_id]

    @cached_property
    def _catalog_order(self) -> dict[str, int]:
        return {p.id: i for i, p in enumerate(self.catalog.papers)}

    @cached_property
    def recent(self) -> list[Paper]:
        """Papers by date added, newest first (ties: newest paper date, then id)."""
        return sorted(self.catalog.papers, key=lambda p: (p.added, p.first_day, p.id), reverse=True)

    @cached_property
    def cited_ids(self) -> dict[str, list[str]]:
        """Catalog ids whose `builds_on` names each paper (the curated reverse edges)."""
        out: dict[str, list[str]] = defaultdict(list)
        for p in self.catalog.papers:
            for target in p.builds_on:
                out[target].append(p.id)
        return out


@dataclass
class RenderContext:
    catalog: Catalog
    out_dir: Path
    indexes: Indexes
    repo_root: Path
    page: str = "index.md"
    directory_urls: bool = urls.USE_DIRECTORY_URLS
    site_url: str | None = None  # absolute base URL, when known (used by the Atom feed)
    extra: dict = field(default_factory=dict)  # free space for plugins; shared between bound copies

    # ---- binding ----
    def at(self, page: str) -> "RenderContext":
        return dataclasses.replace(self, page=page)

    # ---- escaping ----
    escape = staticmethod(esc)
    external_link = staticmethod(external_link)
    safe_href = staticmethod(safe_href)

    # ---- links (Markdown, relative to self.page) ----
    def link(self, target: str) -> str:
        return urls.rel_md(self.page, target)

    def paper_url(self, paper_id: str) -> str:
        return self.link(urls.paper(paper_id))

    def category_url(self, node_id: str) -> str:
        return self.link(urls.category(node_id))

    def facet_url(self, facet: str, slug: str | None = None) -> str:
        """Link to a facet's page, or to one term's section of it."""
        return self.link(urls.facet_index(facet) if slug is None else urls.facet_term(facet, slug))

    def method_url(self, name: str) -> str:
        return self.link(urls.method(name))

    # ---- final URLs (for raw HTML and scripts, relative to self.page) ----
    def href(self, target: str) -> str:
        return urls.rel_url(self.page, target, self.directory_urls)

    # ---- convenient data ----
    @property
    def taxonomy(self):
        return self.catalog.taxonomy

    @property
    def papers(self) -> list[Paper]:
        return self.catalog.papers

    def paper_link(self, paper: Paper) -> str:
        """Markdown link to a paper's page, labelled with its short name."""
        return f"[{esc(paper.name)}]({self.paper_url(paper.id)})"

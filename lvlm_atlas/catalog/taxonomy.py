"""The controlled vocabularies of catalog/taxonomy.yaml, loaded into immutable lookups."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

import yaml

from lvlm_atlas import paths

FACETS = ("bottleneck", "granularity", "modality", "scenario", "kind")


@dataclass(frozen=True)
class Term:
    id: str
    label: str
    description: str


@dataclass(frozen=True)
class Node:
    id: str
    view: str
    label: str
    description: str
    stage: str | None = None
    section: str | None = None
    dimension: Mapping[str, str] = field(default_factory=dict)

    @property
    def parent_id(self) -> str | None:
        return self.id.rsplit("/", 1)[0] if "/" in self.id else None

    @property
    def depth(self) -> int:
        return self.id.count("/")


@dataclass(frozen=True)
class Taxonomy:
    stages: tuple[Term, ...]
    views: tuple[Term, ...]
    nodes: tuple[Node, ...]
    facets: Mapping[str, tuple[Term, ...]]

    @cached_property
    def node_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @cached_property
    def stage_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.stages)

    @cached_property
    def _facet_ids(self) -> dict[str, tuple[str, ...]]:
        return {f: tuple(t.id for t in terms) for f, terms in self.facets.items()}

    def facet_ids(self, facet: str) -> tuple[str, ...]:
        return self._facet_ids[facet]

    @cached_property
    def _terms_by_id(self) -> dict[str, dict[str, Term]]:
        return {f: {t.id: t for t in terms} for f, terms in self.facets.items()}

    def term(self, facet: str, term_id: str) -> Term:
        terms = self._terms_by_id[facet]
        if term_id not in terms:
            raise KeyError(f"no term {term_id!r} in facet {facet!r}; catalog/taxonomy.yaml lists: {', '.join(terms)}")
        return terms[term_id]

    def children(self, node_id: str | None, view: str = "stage") -> list[Node]:
        return [n for n in self.nodes if n.view == view and n.parent_id == node_id]

    def roots(self, view: str) -> list[Node]:
        return [n for n in self.nodes if n.view == view and n.parent_id not in self.node_by_id]

    def ancestors(self, node_id: str) -> list[Node]:
        """The node's ancestors, root first, excluding the node itself."""
        parts = node_id.split("/")
        return [self.node_by_id[p] for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if p in self.node_by_id]

    def dimension_for(self, node_id: str, modalities: list[str]) -> str | None:
        """Map a stage-view node to its dimensions-view node for a paper with these modalities."""
        node = self.node_by_id[node_id]
        if node.view == "dimensions":
            return node.id
        for m in modalities:
            if m in node.dimension:
                return node.dimension[m]
        return node.dimension.get("default")


def _terms(raw: list[dict]) -> tuple[Term, ...]:
    return tuple(Term(id=t["id"], label=t["label"], description=t["description"]) for t in raw)


def load_taxonomy(path: Path = paths.TAXONOMY) -> Taxonomy:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    nodes = tuple(
        Node(
            id=n["id"], view=n["view"], label=n["label"], description=n["description"],
            stage=n.get("stage"), section=n.get("section"), dimension=dict(n.get("dimension") or {}),
        )
        for n in raw["nodes"]
    )
    tax = Taxonomy(
        stages=_terms(raw["stages"]), views=_terms(raw["views"]), nodes=nodes,
        facets={f: _terms(raw["facets"][f]) for f in FACETS},
    )
    _check(tax)
    return tax


def _check(tax: Taxonomy) -> None:
    """The taxonomy file is hand-edited too: fail loudly on inconsistencies."""
    ids = [n.id for n in tax.nodes]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"taxonomy.yaml: duplicate node ids {sorted(dupes)}")
    views = {v.id for v in tax.views}
    for n in tax.nodes:
        if n.view not in views:
            raise ValueError(f"taxonomy.yaml: node {n.id!r} has unknown view {n.view!r}")
        if n.parent_id and n.parent_id not in tax.node_by_id and n.view == "stage":
            raise ValueError(f"taxonomy.yaml: node {n.id!r} has no parent node {n.parent_id!r}")
        if n.stage and n.stage not in tax.stage_ids:
            raise ValueError(f"taxonomy.yaml: node {n.id!r} has unknown stage {n.stage!r}")
        for key, target in n.dimension.items():
            if target not in tax.node_by_id or tax.node_by_id[target].view != "dimensions":
                raise ValueError(f"taxonomy.yaml: node {n.id!r} maps {key!r} to unknown dimensions node {target!r}")
            if key != "default" and key not in tax.facet_ids("modality"):
                raise ValueError(f"taxonomy.yaml: node {n.id!r} maps unknown modality {key!r}")

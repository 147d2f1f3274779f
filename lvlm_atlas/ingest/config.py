"""Ingestion settings from catalog/ingest.yaml: client behaviour, categories and per-node queries."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lvlm_atlas import paths
from lvlm_atlas.catalog.taxonomy import Taxonomy

INGEST_CONFIG = paths.CATALOG / "ingest.yaml"


class ConfigError(ValueError):
    """catalog/ingest.yaml is missing a key or names something that does not exist."""


@dataclass(frozen=True)
class ClientSettings:
    page_size: int = 100
    delay_seconds: float = 3.0
    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 120.0
    max_results_per_query: int = 1000


@dataclass(frozen=True)
class QuerySpec:
    node: str
    terms: tuple[str, ...]
    context: bool = True


@dataclass(frozen=True)
class RelevanceSettings:
    threshold: float
    visual_terms: tuple[str, ...]
    efficiency_terms: tuple[str, ...]
    negative_terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestConfig:
    client: ClientSettings
    categories: tuple[str, ...]
    context_terms: tuple[str, ...]
    relevance: RelevanceSettings
    queries: tuple[QuerySpec, ...]
    node_terms: dict[str, tuple[str, ...]] = field(default_factory=dict)   # query terms, per node
    node_cues: dict[str, tuple[str, ...]] = field(default_factory=dict)    # classifier cues, per subtree
    title_cues: dict[str, tuple[str, ...]] = field(default_factory=dict)   # cues that count in the title only

    def search_query(self, spec: QuerySpec, since: dt.date, until: dt.date) -> str:
        """The arXiv API `search_query` for one spec, restricted to submissions in [since, until]."""
        cats = " OR ".join(f"cat:{c}" for c in self.categories)
        terms = " OR ".join(f'ti:"{t}" OR abs:"{t}"' for t in spec.terms)
        parts = [f"({cats})", f"({terms})"]
        if spec.context and self.context_terms:
            parts.append("(" + " OR ".join(f'abs:"{t}"' for t in self.context_terms) + ")")
        parts.append(f"submittedDate:[{since:%Y%m%d}0000 TO {until:%Y%m%d}2359]")
        return " AND ".join(parts)


def _phrases(raw, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise ConfigError(f"{where} must be a list of non-empty strings")
    bad = [t for t in raw if '"' in t]
    if bad:
        raise ConfigError(f"{where}: remove double quotes from {bad} (terms are quoted for you)")
    return tuple(t.strip().lower() for t in raw)


def load_config(path: Path = INGEST_CONFIG, taxonomy: Taxonomy | None = None) -> IngestConfig:
    """Read and check the ingestion settings; node ids are checked against `taxonomy` when given."""
    if not path.exists():
        raise ConfigError(f"{path} not found; it holds the arXiv queries (see docs/ingestion.md)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    client_raw = raw.get("client") or {}
    known = set(ClientSettings.__dataclass_fields__)
    unknown = set(client_raw) - known
    if unknown:
        raise ConfigError(f"{path}: unknown client settings {sorted(unknown)}; known: {sorted(known)}")
    client = ClientSettings(**client_raw)
    if client.page_size < 1 or client.max_retries < 0 or client.delay_seconds < 0:
        raise ConfigError(f"{path}: page_size must be >= 1, max_retries and delay_seconds >= 0")
    rel = raw.get("relevance") or {}
    try:
        relevance = RelevanceSettings(
            threshold=float(rel.get("threshold", 0.5)),
            visual_terms=_phrases(rel.get("visual_terms"), "relevance.visual_terms"),
            efficiency_terms=_phrases(rel.get("efficiency_terms"), "relevance.efficiency_terms"),
            negative_terms=_phrases(rel.get("negative_terms") or [], "relevance.negative_terms"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: relevance: {exc}") from exc
    queries = []
    extra_cues: dict[str, tuple[str, ...]] = {}
    for i, q in enumerate(raw.get("queries") or []):
        if not isinstance(q, dict) or "node" not in q or "terms" not in q:
            raise ConfigError(f"{path}: queries[{i}] needs 'node' and 'terms'")
        if taxonomy is not None and q["node"] not in taxonomy.node_by_id:
            raise ConfigError(f"{path}: queries[{i}] names unknown taxonomy node {q['node']!r}")
        queries.append(QuerySpec(node=q["node"], terms=_phrases(q["terms"], f"queries[{i}].terms"),
                                 context=bool(q.get("context", True))))
    cues_raw = raw.get("cues") or {}
    if not isinstance(cues_raw, dict):
        raise ConfigError(f"{path}: 'cues' must map taxonomy node ids to lists of phrases")
    for node, phrases in cues_raw.items():
        if taxonomy is not None and node not in taxonomy.node_by_id:
            raise ConfigError(f"{path}: cues names unknown taxonomy node {node!r}")
        extra_cues[node] = _phrases(phrases, f"cues.{node}")
    title_cues = _node_phrases(raw.get("title_cues"), "title_cues", path, taxonomy)
    if not queries:
        raise ConfigError(f"{path}: no queries; add at least one under 'queries:'")
    node_terms: dict[str, tuple[str, ...]] = {}
    for q in queries:
        node_terms[q.node] = node_terms.get(q.node, ()) + q.terms
    if not raw.get("categories"):
        raise ConfigError(f"{path}: 'categories' is empty; list arXiv categories such as cs.CV")
    return IngestConfig(
        client=client,
        categories=tuple(raw.get("categories") or ()),
        context_terms=_phrases(raw.get("context_terms") or [], "context_terms") if raw.get("context_terms") else (),
        relevance=relevance,
        queries=tuple(queries),
        node_terms=node_terms,
        node_cues=extra_cues,
        title_cues=title_cues,
    )


def _node_phrases(raw, key: str, path: Path, taxonomy: Taxonomy | None) -> dict[str, tuple[str, ...]]:
    """A mapping of taxonomy node ids to phrase lists (empty when the key is absent)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: '{key}' must map taxonomy node ids to lists of phrases")
    out: dict[str, tuple[str, ...]] = {}
    for node, phrases in raw.items():
        if taxonomy is not None and node not in taxonomy.node_by_id:
            raise ConfigError(f"{path}: {key} names unknown taxonomy node {node!r}")
        out[node] = _phrases(phrases, f"{key}.{node}")
    return out

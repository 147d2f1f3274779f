"""Pure functions between catalog papers and Semantic Scholar answers (no I/O).

* `query_id`: the id a paper is looked up by (S2 id, else arXiv, DOI, ACL Anthology).
* `IdIndex`: finds the catalog paper behind any external id, so references to catalog papers are stored
  by catalog id and the others by one external id (`ARXIV:…`, `DOI:…`, `ACL:…`, else `S2:<paperId>`).
* `make_record`: one stored record from a batch answer plus its reference list.
* `suggestions`: venue/publication/DOI differences for a human to review; never applied automatically.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from lvlm_atlas.catalog.models import Paper

# externalIds keys of the API -> our prefix, in order of preference for naming an external reference.
EXTERNAL_KEYS = (("ArXiv", "ARXIV"), ("DOI", "DOI"), ("ACL", "ACL"))
KEPT_EXTERNAL_IDS = ("ACL", "ArXiv", "CorpusId", "DBLP", "DOI")


def query_id(paper: Paper) -> str | None:
    ids = paper.identifiers
    if ids.semantic_scholar:
        return ids.semantic_scholar
    if ids.arxiv:
        return f"ARXIV:{ids.arxiv}"
    if ids.doi:
        return f"DOI:{ids.doi}"
    if ids.acl:
        return f"ACL:{ids.acl}"
    return None


def _norm(key: str) -> str:
    prefix, _, value = key.partition(":")
    return f"{prefix}:{value.lower()}" if prefix == "DOI" else key


def keys_of(s2_id: str | None, external_ids: Mapping | None) -> list[str]:
    """Every id string under which a paper may be known, most specific first."""
    out = [f"S2:{s2_id}"] if s2_id else []
    for api_key, prefix in EXTERNAL_KEYS:
        v = (external_ids or {}).get(api_key)
        if isinstance(v, str) and v:
            out.append(_norm(f"{prefix}:{v}"))
    return out


def external_name(s2_id: str | None, external_ids: Mapping | None) -> str | None:
    """The one id a non-catalog reference is stored under (a readable one when there is one)."""
    keys = keys_of(s2_id, external_ids)
    readable = [k for k in keys if not k.startswith("S2:")]
    return (readable or keys or [None])[0]


@dataclass
class IdIndex:
    """external id string -> catalog id."""

    by_key: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, papers: Iterable[Paper], s2_ids: Mapping[str, str] | None = None) -> "IdIndex":
        idx = cls()
        for p in papers:
            ids = p.identifiers
            for key in (f"S2:{ids.semantic_scholar}" if ids.semantic_scholar else None,
                        f"S2:{(s2_ids or {}).get(p.id)}" if (s2_ids or {}).get(p.id) else None,
                        f"ARXIV:{ids.arxiv}" if ids.arxiv else None,
                        _norm(f"DOI:{ids.doi}") if ids.doi else None,
                        f"ACL:{ids.acl}" if ids.acl else None):
                if key:
                    idx.by_key.setdefault(key, p.id)
        return idx

    def lookup(self, keys: Iterable[str]) -> str | None:
        for k in keys:
            hit = self.by_key.get(_norm(k))
            if hit:
                return hit
        return None


def split_references(refs: Iterable[tuple[str | None, Mapping | None]], index: IdIndex,
                     self_id: str) -> dict[str, list[str]]:
    """(paperId, externalIds) pairs -> {"catalog": [catalog ids], "external": [external ids]}, sorted."""
    in_catalog: set[str] = set()
    external: set[str] = set()
    for s2_id, ext in refs:
        hit = index.lookup(keys_of(s2_id, ext))
        if hit:
            if hit != self_id:
                in_catalog.add(hit)
            continue
        name = external_name(s2_id, ext)
        if name:  # references S2 could not resolve to any paper carry no id at all: nothing to store
            external.add(name)
    return {"catalog": sorted(in_catalog), "external": sorted(external)}


_API_KEY_OF = {prefix: api_key for api_key, prefix in EXTERNAL_KEYS}


def reresolve(references: Mapping[str, list[str]], index: IdIndex, self_id: str,
              catalog_ids: set[str] | frozenset[str] | None = None) -> dict[str, list[str]]:
    """Re-sort stored references against the current catalog (papers added since the fetch).
    `catalog_ids` (the current ids) drops catalog references to papers that left the catalog."""
    pairs: list[tuple[str | None, Mapping | None]] = []
    in_catalog = set(references.get("catalog", []))
    kept = in_catalog if catalog_ids is None else in_catalog & set(catalog_ids)
    for name in references.get("external", []):
        prefix, _, value = name.partition(":")
        if prefix == "S2":
            pairs.append((value, None))
        else:
            pairs.append((None, {_API_KEY_OF[prefix]: value}))
    split = split_references(pairs, index, self_id)
    return {"catalog": sorted(kept | set(split["catalog"])), "external": split["external"]}


def make_record(query: str, answer: Mapping, references: Mapping[str, list[str]], fetched: str) -> dict:
    """The stored record for one paper: the batch answer's useful fields plus its references."""
    ext = answer.get("externalIds") or {}
    venue = answer.get("publicationVenue") or {}
    journal = answer.get("journal") or {}
    return {
        "query": query,
        "s2_id": answer["paperId"],
        "title": answer.get("title"),
        "citation_count": answer.get("citationCount"),
        "influential_citation_count": answer.get("influentialCitationCount"),
        "reference_count": answer.get("referenceCount"),
        "external_ids": {k: ext[k] for k in KEPT_EXTERNAL_IDS if ext.get(k) not in (None, "")},
        "venue": answer.get("venue") or (venue.get("name") if isinstance(venue, dict) else None) or None,
        "journal": (journal.get("name") if isinstance(journal, dict) else None) or None,
        "year": answer.get("year"),
        "publication_date": answer.get("publicationDate"),
        "publication_types": sorted(answer.get("publicationTypes") or []),
        "references": {"catalog": list(references["catalog"]), "external": list(references["external"])},
        "fetched": fetched,
    }


def merge(old: Mapping | None, new: dict) -> dict:
    """Keep the old fetch date when nothing but the date changed, so reruns are byte-identical."""
    if old is not None and {k: v for k, v in old.items() if k != "fetched"} == \
            {k: v for k, v in new.items() if k != "fetched"}:
        return dict(old)
    return new


_PREPRINT_VENUES = {"arxiv", "arxiv.org", "corr", "biorxiv", "medrxiv", "ssrn", ""}


def suggestions(paper: Paper, record: Mapping) -> list[str]:
    """Differences between curated fields and what Semantic Scholar reports, for a human to judge."""
    out: list[str] = []
    venue = (record.get("venue") or "").strip()
    if paper.status == "preprint" and venue.lower() not in _PREPRINT_VENUES:
        year = record.get("year")
        out.append(f"status is preprint, but Semantic Scholar lists venue {venue!r}"
                   f"{f' ({year})' if year else ''}: if it was published, set status: published and venue")
    doi = record.get("external_ids", {}).get("DOI")
    if doi and not paper.identifiers.doi and not doi.lower().startswith("10.48550/arxiv"):
        out.append(f"identifiers.doi is empty; Semantic Scholar has DOI {doi!r}")
    acl = record.get("external_ids", {}).get("ACL")
    if acl and not paper.identifiers.acl:
        out.append(f"identifiers.acl is empty; Semantic Scholar has ACL Anthology id {acl!r}")
    return out

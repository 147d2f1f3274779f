"""Recognise papers we already have: in the catalog, on the rejected list, or earlier in this run.

A paper is "known" when its arXiv id (without version), its DOI (case-insensitive) or its title matches;
titles match after normalisation (case, accents, punctuation, spacing) or when they are near-duplicates by
the catalog validator's rule (same numbers, mostly the same words, similarity >= its threshold, and no
content word in one title that the other lacks: see `differ_in_content`), so that
every candidate written here also passes `atlas validate`.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lvlm_atlas.catalog.validate import NEAR_DUPLICATE_RATIO, differ_in_content, normalise_title


@dataclass(frozen=True)
class Known:
    """Something already known: a catalog entry, a rejected id, or a record seen earlier in this run."""
    label: str          # e.g. "catalog entry fastv", "rejected (off-topic)", "this run: 2411.00001"
    arxiv: str | None = None
    doi: str | None = None
    title: str | None = None


@dataclass
class DedupIndex:
    by_arxiv: dict[str, Known] = field(default_factory=dict)
    by_doi: dict[str, Known] = field(default_factory=dict)
    by_title: dict[str, Known] = field(default_factory=dict)

    def add(self, known: Known) -> None:
        if known.arxiv:
            self.by_arxiv.setdefault(known.arxiv, known)
        if known.doi:
            self.by_doi.setdefault(known.doi.lower(), known)
        if known.title:
            norm = normalise_title(known.title)
            if norm:
                self.by_title.setdefault(norm, known)

    def match(self, arxiv_id: str | None, doi: str | None, title: str | None) -> tuple[Known, str] | None:
        """(what it duplicates, why) or None when the paper is new."""
        if arxiv_id and arxiv_id in self.by_arxiv:
            return self.by_arxiv[arxiv_id], f"same arXiv id {arxiv_id}"
        if doi and doi.lower() in self.by_doi:
            return self.by_doi[doi.lower()], f"same DOI {doi}"
        if not title:
            return None
        norm = normalise_title(title)
        if norm in self.by_title:
            return self.by_title[norm], "same title"
        numbers, words = re.findall(r"\d+", norm), set(norm.split())
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(norm)
        for other, known in self.by_title.items():
            matcher.set_seq1(other)
            if matcher.real_quick_ratio() < NEAR_DUPLICATE_RATIO or re.findall(r"\d+", other) != numbers:
                continue
            other_words = set(other.split())
            if len(words & other_words) / max(len(words | other_words), 1) < 0.6:
                continue
            if matcher.quick_ratio() >= NEAR_DUPLICATE_RATIO and matcher.ratio() >= NEAR_DUPLICATE_RATIO \
                    and not differ_in_content(norm, other):  # "DNA ..." vs "Genetic ...": two papers
                return known, f"near-duplicate title ({matcher.ratio():.2f})"
        return None


def catalog_known(papers_dir: Path) -> tuple[list[Known], list[str]]:
    """Identity of every paper file, read as plain YAML so one invalid file cannot hide the others.

    Returns (known entries, the ids in use).
    """
    known: list[Known] = []
    ids: list[str] = []
    for path in sorted(papers_dir.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            data = {}
        ids.append(str(data.get("id") or path.stem))
        ident = data.get("identifiers") or {}
        label = "catalog candidate" if data.get("candidate") else "catalog entry"
        known.append(Known(label=f"{label} {path.stem}", arxiv=_s(ident.get("arxiv")), doi=_s(ident.get("doi")),
                           title=_s(data.get("title"))))
    return known, ids


def _s(v) -> str | None:
    return str(v).strip() if v not in (None, "") else None

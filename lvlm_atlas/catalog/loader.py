"""Load the whole catalog into validated `Paper` objects.

`load_catalog()` is what the exports, the site and the graph use: it runs the full validator and
raises `CatalogError` (with every problem listed) if anything is wrong, so nothing downstream ever
sees invalid data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lvlm_atlas import paths
from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.results import ResultsFile, load_results
from lvlm_atlas.catalog.taxonomy import Taxonomy, load_taxonomy
from lvlm_atlas.catalog.validate import validate_catalog


class CatalogError(Exception):
    def __init__(self, problems: list) -> None:
        self.problems = problems
        super().__init__("catalog is invalid:\n" + "\n".join(str(p) for p in problems))


@dataclass
class Catalog:
    papers: list[Paper]
    taxonomy: Taxonomy
    root: Path = field(default=paths.CATALOG)
    results: list[ResultsFile] = field(default_factory=list)  # paper-reported numbers (catalog/results/)

    @cached_property
    def by_id(self) -> dict[str, Paper]:
        return {p.id: p for p in self.papers}

    def __len__(self) -> int:
        return len(self.papers)

    def __iter__(self):
        return iter(self.papers)


def load_catalog(papers_dir: Path = paths.PAPERS, taxonomy_path: Path = paths.TAXONOMY) -> Catalog:
    tax = load_taxonomy(taxonomy_path)
    report = validate_catalog(papers_dir, tax)
    if report.problems:
        raise CatalogError(report.problems)
    papers = sorted(report.papers, key=lambda p: p.id)
    results, problems = load_results(papers_dir.parent / "results", {p.id for p in papers})
    if problems:
        raise CatalogError(problems)
    return Catalog(papers=papers, taxonomy=tax, root=papers_dir.parent, results=results)

"""The facets the site groups papers by: taxonomy vocabularies plus year, venue, training-free, code
and runnable. Each facet maps a paper to the terms it carries; terms have a stable slug for URLs."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.taxonomy import Taxonomy


@dataclass(frozen=True)
class FacetTerm:
    slug: str
    label: str
    description: str = ""


@dataclass(frozen=True)
class Facet:
    id: str
    label: str
    description: str
    terms_of: Callable[[Paper], list[FacetTerm]]
    order: Callable[[FacetTerm], object] | None = None  # sort key for terms; None = first-seen order


def slugify(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "other"


def venue_series(paper: Paper) -> str:
    """The venue without its year ("CVPR 2025" -> "CVPR"); "Preprint" for papers without a venue."""
    if not paper.venue:
        return "Preprint"
    name = re.sub(r"\b(19|20)\d{2}\b", " ", paper.venue)
    name = re.sub(r"[\s'’-]+$", "", re.sub(r"\s+", " ", name)).strip(" ,;-")
    if not name or name.lower().startswith("arxiv"):
        return "Preprint"
    return name


def _yes_no(value: bool | None, yes: str, no: str, na: str | None = None) -> list[FacetTerm]:
    if value is None:
        return [FacetTerm("not-applicable", na or "Not applicable")] if na else []
    return [FacetTerm("yes", yes)] if value else [FacetTerm("no", no)]


def build_facets(tax: Taxonomy, runnable: Callable[[Paper], bool]) -> list[Facet]:
    def vocab(facet: str) -> Callable[[Paper], list[FacetTerm]]:
        def terms(p: Paper) -> list[FacetTerm]:
            values = [p.kind] if facet == "kind" else getattr(p, facet)
            return [FacetTerm(v, tax.term(facet, v).label, tax.term(facet, v).description) for v in values]

        return terms

    def vocab_order(facet: str):
        index = {t.id: i for i, t in enumerate(tax.facets[facet])}
        return lambda t: index.get(t.slug, len(index))

    yes_first = {"yes": 0, "no": 1, "not-applicable": 2}
    return [
        Facet("bottleneck", "Bottleneck", "The hardware limit a technique relieves.",
              vocab("bottleneck"), vocab_order("bottleneck")),
        Facet("granularity", "Granularity", "The unit a technique acts on.",
              vocab("granularity"), vocab_order("granularity")),
        Facet("modality", "Modality", "The visual inputs a technique targets.",
              vocab("modality"), vocab_order("modality")),
        Facet("scenario", "Scenario", "Static inputs, streaming inputs or serving many requests.",
              vocab("scenario"), vocab_order("scenario")),
        Facet("kind", "Kind", "Method, model, system, benchmark, survey or analysis.",
              vocab("kind"), vocab_order("kind")),
        Facet("year", "Year", "Year of the venue version, or of the first version for preprints.",
              lambda p: [FacetTerm(str(p.year), str(p.year))], lambda t: -int(t.slug)),
        Facet("venue", "Venue", "Conference or journal series (the year is its own facet).",
              lambda p: [FacetTerm(slugify(venue_series(p)), venue_series(p))], lambda t: (t.slug == "preprint", t.label.lower())),
        Facet("training-free", "Training-free", "Whether a method works on a trained model without further training.",
              lambda p: _yes_no(p.training_free, "Training-free", "Needs training", "Not applicable"),
              lambda t: yes_first.get(t.slug, 3)),
        Facet("has-code", "Has code", "Whether a code release is linked.",
              lambda p: _yes_no(bool(p.links.code), "Code available", "No code linked"),
              lambda t: yes_first.get(t.slug, 3)),
        Facet("runnable", "Runnable here", "Whether this project ships a runnable implementation (a method card).",
              lambda p: _yes_no(runnable(p), "Runnable in LVLM Atlas", "Not implemented here"),
              lambda t: yes_first.get(t.slug, 3)),
    ]

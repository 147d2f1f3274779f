"""Turn an arXiv record and its classification into one schema-valid candidate file, written atomically.

Candidates go to catalog/papers/<id>.yaml with `source: arxiv-ingest` and `candidate: true`, so the
validator, the site (which can badge them) and dedup of later runs all see them; a reviewer accepts one
by editing the tags and summary and setting `source: manual` / `candidate: false` (or deleting the two
lines), or rejects it with `atlas ingest --reject ID`.
The classifier's confidence and reasons go into comment lines at the top of the file.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

from lvlm_atlas.catalog.models import SLUG_RE, Paper
from lvlm_atlas.catalog.taxonomy import Taxonomy
from lvlm_atlas.catalog.atomic import write_text_atomic as atomic_write_text
from lvlm_atlas.ingest.classify import Classification
from lvlm_atlas.ingest.record import ArxivRecord

SCHEMA_LINE = "# yaml-language-server: $schema=../schema/paper.schema.json"
SUMMARY_PLACEHOLDER = ("Ingested candidate, auto-classified under {label} ({confidence:.0%} confidence); "
                       "a reviewer replaces this line with a one-line summary in our own words.")
MAX_NAME = 60


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")


def short_name(title: str) -> str:
    """'FastV' from 'FastV: An Image is Worth...'; otherwise the first words of the title."""
    head = re.split(r":\s|\s[-\u2013\u2014]\s", title, maxsplit=1)[0].strip()
    if 1 <= len(head.split()) <= 4 and len(head) <= MAX_NAME and head != title:
        return head
    words = title.split()
    name = ""
    for w in words:
        if len(name) + len(w) + 1 > MAX_NAME - 3 or len(name.split()) >= 6:
            return name + "..."
        name = f"{name} {w}".strip()
    return name


def choose_id(name: str, record: ArxivRecord, taken: set[str]) -> str:
    """A free slug: the name, then name-<first author surname>, then name-<arXiv id>."""
    base = slugify(name) or slugify(record.arxiv_id)
    surname = slugify(record.authors[0].split()[-1]) if record.authors else ""
    for cand in (base, f"{base}-{surname}" if surname else "", f"{base}-{slugify(record.arxiv_id)}"):
        cand = cand.strip("-")[:80].strip("-")
        if cand and cand not in taken and re.match(SLUG_RE, cand):
            return cand
    i = 2
    while f"{base}-{i}" in taken:
        i += 1
    return f"{base}-{i}"


@dataclass
class Candidate:
    id: str
    record: ArxivRecord
    classification: Classification
    relevance: float
    reasons: list[str]
    path: Path | None = None


def paper_data(record: ArxivRecord, cls: Classification, paper_id: str, tax: Taxonomy, added: dt.date,
               source: str = "arxiv-ingest") -> dict:
    """The YAML mapping for one entry, in the catalog's usual key order."""
    label = tax.node_by_id[cls.primary].label
    placements = [{"node": cls.primary, "primary": True}] + [{"node": n} for n in cls.secondary]
    code = [{"url": u, "official": True} for u in record.code_urls]
    links: dict = {"paper": record.abs_url, "pdf": record.pdf_url}
    if code:
        links["code"] = code
    if record.project_urls:
        links["project"] = record.project_urls[0]
    identifiers = {"arxiv": record.arxiv_id}
    if record.doi:
        identifiers["doi"] = record.doi
    data = {
        "id": paper_id,
        "name": short_name(record.title),
        "title": record.title,
        "authors": list(record.authors),
        "year": record.published.year,
        "date": record.published.isoformat(),
        "venue": None,
        "status": "preprint",
        "kind": cls.kind,
        "identifiers": identifiers,
        "links": links,
        "placements": placements,
        "bottleneck": cls.bottleneck,
        "granularity": cls.granularity,
        "modality": cls.modality,
        "scenario": cls.scenario,
        "training_free": cls.training_free,
        "summary": SUMMARY_PLACEHOLDER.format(label=label, confidence=cls.confidence),
        "abstract": record.abstract[:5000] or None,
        "added": max(added, record.published),
        "source": source,
        "candidate": source == "arxiv-ingest",
    }
    if record.comment:
        data["comment"] = record.comment[:1000]
    if record.journal_ref:
        data["journal_ref"] = record.journal_ref[:400]
    return data


def render(data: dict, header_lines: list[str]) -> str:
    comments = "".join(f"# {line}\n" for line in header_lines)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)
    return f"{SCHEMA_LINE}\n{comments}{body}"


def write_candidate(papers_dir: Path, data: dict, tax: Taxonomy, header_lines: list[str]) -> Path:
    """Validate against the schema, then write atomically. Raises pydantic.ValidationError, writing nothing."""
    text = render(data, header_lines)
    Paper.model_validate(yaml.safe_load(text), context={"taxonomy": tax})  # what a reader will load
    path = papers_dir / f"{data['id']}.yaml"
    if path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite a catalog entry")
    atomic_write_text(path, text)
    return path

"""Exports of the catalog: JSON, YAML, CSV, BibTeX and CSL-JSON.

Every export is deterministic (papers sorted by id, keys in a fixed order) so that regenerating it
without catalog changes produces byte-identical output.
"""
from __future__ import annotations

import csv
import io
import json
import re
import unicodedata

from lvlm_atlas.catalog.loader import Catalog
from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.taxonomy import Taxonomy
from lvlm_atlas.catalog.yaml_emit import dump_records

FORMATS = ("json", "yaml", "csv", "bibtex", "csljson")
_JOURNAL_RE = re.compile(r"transactions|journal|\btmlr\b|\btpami\b|\bijcv\b|letters|\baccess\b|\bpacm", re.I)


def paper_record(paper: Paper, tax: Taxonomy) -> dict:
    """The flat, documented record of one paper used by the JSON, YAML and CSV exports and the site."""
    return {
        "id": paper.id,
        "name": paper.name,
        "title": paper.title,
        "authors": list(paper.authors),
        "year": paper.year,
        "date": paper.date,
        "venue": paper.venue,
        "status": paper.status,
        "kind": paper.kind,
        "arxiv": paper.identifiers.arxiv,
        "doi": paper.identifiers.doi,
        "openreview": paper.identifiers.openreview,
        "semantic_scholar": paper.identifiers.semantic_scholar,
        "url": paper.url,
        "code": paper.official_code or (str(paper.links.code[0].url) if paper.links.code else None),
        "code_official": bool(paper.official_code),
        "project": str(paper.links.project) if paper.links.project else None,
        "stages": paper.stages(tax),
        "primary": paper.primary_node,
        "placements": [p.node for p in paper.placements],
        "dimensions": paper.dimension_nodes(tax),
        "bottleneck": list(paper.bottleneck),
        "granularity": list(paper.granularity),
        "modality": list(paper.modality),
        "scenario": list(paper.scenario),
        "training_free": paper.training_free,
        "method": paper.method,
        "summary": paper.summary,
        "builds_on": list(paper.builds_on),
        "added": paper.added.isoformat(),
        "source": paper.source,
        "candidate": paper.candidate,
    }


def records(catalog: Catalog) -> list[dict]:
    return [paper_record(p, catalog.taxonomy) for p in sorted(catalog.papers, key=lambda p: p.id)]


def json_array(items: list[dict]) -> str:
    """A JSON array with one object per line: valid JSON, diff-friendly, and written by the C encoder
    (`indent=` would fall back to the much slower pure-Python one)."""
    if not items:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n]\n"


def export_json(catalog: Catalog, rows: list[dict] | None = None) -> str:
    return json_array(records(catalog) if rows is None else rows)


def export_yaml(catalog: Catalog, rows: list[dict] | None = None) -> str:
    return dump_records(records(catalog) if rows is None else rows)


CSV_LIST_SEPARATOR = "; "


def export_csv(catalog: Catalog, rows: list[dict] | None = None) -> str:
    rows = records(catalog) if rows is None else rows
    buf = io.StringIO()
    fields = list(rows[0]) if rows else list(paper_record.__annotations__)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: CSV_LIST_SEPARATOR.join(v) if isinstance(v, list) else ("" if v is None else v)
                         for k, v in row.items()})
    return buf.getvalue()


# ---------------------------------------------------------------- BibTeX

_BIBTEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$",
                   "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


_BIBTEX_TABLE = str.maketrans(_BIBTEX_SPECIAL)


def bibtex_escape(text: str) -> str:
    return text.translate(_BIBTEX_TABLE)


def _ascii_slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower())


def bibtex_key(paper: Paper) -> str:
    surname = _ascii_slug(paper.authors[0].split()[-1]) or "anon"
    return f"{surname}{paper.year}{_ascii_slug(paper.id)}"


def bibtex_type(paper: Paper) -> str:
    if paper.status == "preprint" or not paper.venue:
        return "misc"
    return "article" if _JOURNAL_RE.search(paper.venue) else "inproceedings"


def bibtex_entry(paper: Paper) -> str:
    kind = bibtex_type(paper)
    fields: list[tuple[str, str]] = [
        ("title", "{" + bibtex_escape(paper.title) + "}"),
        ("author", bibtex_escape(" and ".join(paper.authors))),
        ("year", str(paper.year)),
    ]
    if kind == "inproceedings":
        fields.append(("booktitle", bibtex_escape(paper.venue or "")))
    elif kind == "article":
        fields.append(("journal", bibtex_escape(paper.venue or "")))
    if paper.identifiers.doi:
        fields.append(("doi", bibtex_escape(paper.identifiers.doi)))
    if paper.identifiers.arxiv:
        fields += [("eprint", paper.identifiers.arxiv), ("archiveprefix", "arXiv")]
    fields.append(("url", bibtex_escape(paper.url)))
    if kind == "misc" and paper.identifiers.arxiv:
        fields.append(("note", "arXiv preprint arXiv:" + paper.identifiers.arxiv))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{bibtex_key(paper)},\n{body}\n}}\n"


def export_bibtex(catalog: Catalog) -> str:
    return "\n".join(bibtex_entry(p) for p in sorted(catalog.papers, key=lambda p: p.id))


# ---------------------------------------------------------------- CSL-JSON

def csl_name(author: str) -> dict:
    parts = author.split()
    if len(parts) == 1:
        return {"literal": author}
    return {"given": " ".join(parts[:-1]), "family": parts[-1]}


def csl_item(paper: Paper) -> dict:
    kind = bibtex_type(paper)
    item: dict = {
        "id": paper.id,
        "type": {"inproceedings": "paper-conference", "article": "article-journal"}.get(kind, "article"),
        "title": paper.title,
        "author": [csl_name(a) for a in paper.authors],
        "issued": {"date-parts": [[paper.year]]},
        "URL": paper.url,
    }
    if paper.venue and kind != "misc":
        item["container-title"] = paper.venue
    if kind == "misc":
        item["publisher"] = "arXiv" if paper.identifiers.arxiv else None
        item = {k: v for k, v in item.items() if v is not None}
    if paper.identifiers.doi:
        item["DOI"] = paper.identifiers.doi
    if paper.identifiers.arxiv:
        item["number"] = "arXiv:" + paper.identifiers.arxiv
    return item


def export_csljson(catalog: Catalog) -> str:
    items = [csl_item(p) for p in sorted(catalog.papers, key=lambda p: p.id)]
    return json_array(items)


_EXPORTERS = {"json": export_json, "yaml": export_yaml, "csv": export_csv, "bibtex": export_bibtex, "csljson": export_csljson}


_FROM_RECORDS = ("json", "yaml", "csv")  # the exporters that write `records(catalog)`


def render_export(catalog: Catalog, fmt: str) -> str:
    return render_exports(catalog, [fmt])[fmt]


def render_exports(catalog: Catalog, formats) -> dict[str, str]:
    """Several exports at once: {format: text}, computing the shared flat records only once."""
    formats = list(formats)
    unknown = [f for f in formats if f not in _EXPORTERS]
    if unknown:
        raise ValueError(f"unknown export format {unknown[0]!r}; choose one of: {', '.join(FORMATS)}")
    rows = records(catalog) if any(f in _FROM_RECORDS for f in formats) else None
    return {f: _EXPORTERS[f](catalog, rows) if f in _FROM_RECORDS else _EXPORTERS[f](catalog) for f in formats}

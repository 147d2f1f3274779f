"""The paper schema (pydantic v2). One `Paper` per file in catalog/papers/<id>.yaml.

Field-level checks live here (types, formats, vocabulary terms); cross-file checks (unique ids,
duplicate arXiv ids, near-duplicate titles, existing `method` names) live in `lvlm_atlas.catalog.validate`.
Vocabularies come from catalog/taxonomy.yaml, passed as validation context
(`Paper.model_validate(data, context={"taxonomy": tax})`) or loaded on first use.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re
from typing import Annotated, Literal

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lvlm_atlas.catalog.taxonomy import Taxonomy, load_taxonomy

SLUG_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
# New-style arXiv ids (YYMM.NNNN or YYMM.NNNNN) and old-style ids (archive[.SUB]/YYMMNNN), no version.
ARXIV_NEW_RE = re.compile(r"^(\d{2})(\d{2})\.(\d{4,5})$")
ARXIV_OLD_RE = re.compile(r"^[a-z-]+(?:\.[A-Z]{2})?/(\d{2})(\d{2})\d{3}$")
DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")

_default_taxonomy: Taxonomy | None = None


def _taxonomy(info: ValidationInfo) -> Taxonomy:
    global _default_taxonomy
    if info.context and "taxonomy" in info.context:
        return info.context["taxonomy"]
    if _default_taxonomy is None:
        _default_taxonomy = load_taxonomy()
    return _default_taxonomy


HINT_SEP = "\nhint: "  # a ValueError's text may end with a hint; validate.py shows it as the problem's hint
PROBLEM_SEP = "\n\n"  # one ValueError may carry several problems (each unknown term of a list)


def problem(message: str, hint: str = "") -> str:
    """The text of one problem for a ValueError: a one-line message and, optionally, a one-line hint. A
    whole-entry check starts its message with the key it is about (e.g. 'year ...'); the validator reports
    it at that key's line."""
    return message + (HINT_SEP + hint if hint else "")


def _check_terms(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    unknown = []
    for v in values:
        if v not in allowed:
            close = difflib.get_close_matches(v, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            unknown.append(f"unknown {what} {v!r}; {hint}allowed: {', '.join(allowed)}")
    if unknown:  # every unknown term is reported, not only the first
        raise ValueError(PROBLEM_SEP.join(unknown))
    if len(set(values)) != len(values):
        raise ValueError(f"{what} lists a term twice: {values}")
    return values


def arxiv_yymm(arxiv_id: str) -> tuple[int, int] | None:
    """(year, month) encoded in an arXiv id, or None if the id is malformed.

    New-style ids have four digits after the dot until 2014 (YYMM.NNNN) and five from 2015 on (YYMM.NNNNN),
    so '2312.8914' is malformed (a digit is missing), not a valid id of December 2023."""
    new = ARXIV_NEW_RE.match(arxiv_id)
    m = new or ARXIV_OLD_RE.match(arxiv_id)
    if not m:
        return None
    yy, mm = int(m.group(1)), int(m.group(2))
    if new and len(new.group(3)) != (5 if yy >= 15 else 4):
        return None
    year = 2000 + yy if yy < 91 else 1900 + yy
    return (year, mm) if 1 <= mm <= 12 else None


ARXIV_PATTERN_HINT = ("an arXiv id is YYMM.NNNNN (five digits after the dot from 2015 on, e.g. '2403.06764'), "
                      "YYMM.NNNN up to 2014, or archive/YYMMNNN for old ids (e.g. 'cs/0601001'); "
                      "no 'arXiv:' prefix or version")


def _submitted_before_announcement(date: str, yymm: tuple[int, int]) -> bool:
    """True for a first version dated shortly before its id's month. arXiv numbers a paper when it is
    announced: one submitted after a month's last cut-off gets an id of the next month (e.g. submitted
    2025-10-31, id 2511.00141), and one held in moderation can be announced weeks later (DOP: submitted
    2025-06-24, id 2507.02909). Only dates with a day qualify, at most `HELD_MONTHS` months before the id's
    month; a month-only date must match the id, and no date may be after the id's month."""
    if len(date) != 10:
        return False
    y, m = int(date[:4]), int(date[5:7])
    months_before = (yymm[0] - y) * 12 + (yymm[1] - m)
    return 1 <= months_before <= HELD_MONTHS


VENUE_YEAR_RE = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")  # a year the venue names, e.g. 'CVPR 2024'
# Entries with an arXiv id need the first version's full date (YYYY-MM-DD). Enforced for entries added from
# this date on; older entries with a month-only date are being completed (docs/contributing.md, "Metadata
# rules"), after which this cut-off goes.
FULL_DATE_REQUIRED_FROM = dt.date(2026, 12, 5)
HELD_MONTHS = 3  # how long before its id's month a first version may have been submitted (moderation holds)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


HttpUrl = Annotated[AnyUrl, Field(description="An absolute http:// or https:// URL.")]


def _http_only(url: AnyUrl) -> AnyUrl:
    if url.scheme not in ("http", "https"):
        raise ValueError(f"URL scheme {url.scheme!r} is not allowed; write an http:// or https:// URL")
    return url


class CodeLink(Strict):
    url: HttpUrl
    official: bool = Field(description="True when released by the paper's authors.")

    _scheme = field_validator("url")(lambda cls, v: _http_only(v))


class Links(Strict):
    paper: HttpUrl = Field(description="Canonical page of the paper (arXiv abstract, proceedings, OpenReview).")
    pdf: HttpUrl | None = None
    code: list[CodeLink] = Field(default_factory=list)
    project: HttpUrl | None = Field(default=None, description="Project page.")

    @field_validator("paper", "pdf", "project")
    @classmethod
    def _scheme(cls, v):
        return v if v is None else _http_only(v)


class Identifiers(Strict):
    arxiv: str | None = Field(default=None, description="arXiv id without version, e.g. 2403.06764.")
    doi: str | None = Field(default=None, description="DOI without the https://doi.org/ prefix.")
    openreview: str | None = Field(default=None, description="OpenReview forum id.")
    semantic_scholar: str | None = Field(default=None, description="Semantic Scholar paper id (40 hex digits).")
    acl: str | None = Field(default=None, description="ACL Anthology id, e.g. 2025.acl-long.123.")

    @field_validator("arxiv")
    @classmethod
    def _arxiv(cls, v: str | None) -> str | None:
        if v is None:
            return v
        bare = re.sub(r"v\d+$", "", v)
        if bare != v and arxiv_yymm(bare) is not None:
            raise ValueError(f"arXiv id {v!r} has a version suffix; write {bare!r}")
        if arxiv_yymm(v) is None:
            raise ValueError(problem(f"malformed arXiv id {v!r}: the id itself does not have the form of an arXiv id",
                                     f"copy the id from the paper's arXiv page; {ARXIV_PATTERN_HINT}"))
        return v

    @field_validator("doi")
    @classmethod
    def _doi(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.lower().startswith(("http://", "https://", "doi:")):
            raise ValueError(f"write the bare DOI, e.g. '10.1109/ICCV51070.2023.00532', not {v!r}")
        if not DOI_RE.match(v):
            raise ValueError(f"malformed DOI {v!r}; a DOI looks like '10.NNNN/suffix'")
        return v

    @field_validator("semantic_scholar")
    @classmethod
    def _s2(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{40}", v):
            raise ValueError(f"Semantic Scholar paper id {v!r} must be 40 lowercase hex digits")
        return v


# The primary-placement rule of catalog/taxonomy.yaml: the primary placement is on the earliest
# inference stage the method acts on. Systems (system/...) and resources keep their own primary.
_RULED_STAGES = ("encoding", "prefilling", "decoding")


def _check_earliest_stage(primary: "Placement", placements: list["Placement"], tax) -> None:
    stage = tax.node_by_id[primary.node].stage
    if stage not in _RULED_STAGES:
        return
    rank = {s: i for i, s in enumerate(_RULED_STAGES)}
    for p in placements:
        other = tax.node_by_id[p.node]
        if other.view == "stage" and other.stage in rank and rank[other.stage] < rank[stage]:
            raise ValueError(
                f"the primary placement {primary.node!r} is on the {stage} stage but {p.node!r} is on the earlier "
                f"{other.stage} stage; move 'primary: true' to {p.node!r} (the primary placement is the earliest "
                "stage the method acts on; only systems keep a system/... primary), or remove that placement")


class Placement(Strict):
    node: str = Field(description="A node id of catalog/taxonomy.yaml, e.g. prefilling/token-compression/attention-guided.")
    primary: bool = False


class Paper(Strict):
    """One paper of the catalog."""

    id: str = Field(pattern=SLUG_RE, max_length=80, description="Stable lowercase slug; equals the file name.")
    name: str = Field(min_length=1, max_length=60, description="Short name used in tables, e.g. FastV.")
    title: str = Field(min_length=1, max_length=400)
    authors: list[Annotated[str, Field(min_length=2, max_length=120)]] = Field(min_length=1, description="Full author list, in order.")
    year: int = Field(ge=1990, le=2100, description="Year of the venue version, or of the first version for preprints; "
                      "between the arXiv id's year (or 1990) and the current year, and equal to a year the venue names.")
    date: str = Field(
        description="First public version (e.g. arXiv v1): YYYY-MM-DD, or YYYY-MM when only the month is known; "
                    "never in the future."
    )
    venue: str | None = Field(default=None, max_length=120, description="e.g. 'ECCV 2024'; null for preprints.")
    status: Literal["preprint", "published"]
    kind: str = Field(description="method, model, system, benchmark, survey or analysis.")
    identifiers: Identifiers = Field(default_factory=Identifiers)
    links: Links
    placements: list[Placement] = Field(min_length=1)
    bottleneck: list[str] = Field(default_factory=list)
    granularity: list[str] = Field(default_factory=list)
    modality: list[str] = Field(default_factory=list)
    scenario: list[str] = Field(default_factory=list, description="static, streaming or serving (Table 3 of the ACL survey), "
                                "or general when none applies; never empty.")
    training_free: bool | None = Field(default=None, description="Required (true or false) for kind: method; "
                                       "null when the question does not apply (models, benchmarks).")
    summary: str = Field(min_length=10, max_length=400, description="One line, in our own words.")
    abstract: str | None = Field(default=None, max_length=5000)
    method: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$", description="Name of a runnable implementation in methods/.")
    builds_on: list[Annotated[str, Field(pattern=SLUG_RE)]] = Field(default_factory=list, description="Catalog ids this work directly extends.")
    added: dt.date = Field(description="Date the entry was added to the catalog.")
    source: Literal["manual", "arxiv-ingest"] = "manual"
    candidate: bool = Field(default=False, description="True for ingested entries a human has not accepted yet.")
    comment: str | None = Field(default=None, max_length=1000, description="arXiv comment field.")
    journal_ref: str | None = Field(default=None, max_length=400, description="arXiv journal reference.")

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, v):
        if isinstance(v, dt.datetime):
            v = v.date()
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}", v.strip()):
            y, m = map(int, v.strip().split("-"))
            if 1 <= m <= 12:
                return v.strip()
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v.strip()).isoformat()
            except ValueError:
                pass
        raise ValueError(f"invalid date {v!r}; write YYYY-MM-DD (or YYYY-MM when the day is unknown)")

    @field_validator("title", "name", "summary")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v:
            raise ValueError("must be a single line")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str, info: ValidationInfo) -> str:
        _check_terms([v], _taxonomy(info).facet_ids("kind"), "kind")
        return v

    @field_validator("bottleneck", "granularity", "modality", "scenario")
    @classmethod
    def _facet(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return _check_terms(v, _taxonomy(info).facet_ids(info.field_name), info.field_name)

    @field_validator("placements")
    @classmethod
    def _placements(cls, v: list[Placement], info: ValidationInfo) -> list[Placement]:
        tax = _taxonomy(info)
        for p in v:
            if p.node not in tax.node_by_id:
                close = difflib.get_close_matches(p.node, list(tax.node_by_id), n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}?" if close else "see catalog/taxonomy.yaml for node ids"
                raise ValueError(f"unknown taxonomy node {p.node!r}; {hint}")
        primaries = [p for p in v if p.primary]
        if len(primaries) != 1:
            raise ValueError(f"exactly one placement must have 'primary: true' (found {len(primaries)})")
        if tax.node_by_id[primaries[0].node].view != "stage":
            raise ValueError(f"the primary placement {primaries[0].node!r} must be a node of the stage view")
        seen = [p.node for p in v]
        if len(set(seen)) != len(seen):
            raise ValueError("a taxonomy node is listed twice in placements")
        _check_earliest_stage(primaries[0], v, tax)
        return v

    @model_validator(mode="after")
    def _consistency(self) -> "Paper":
        if self.status == "published" and not self.venue:
            raise ValueError("status is 'published' but venue is empty; write the venue (e.g. 'CVPR 2025') or set status: preprint")
        if self.status == "preprint" and self.venue and not self.venue.lower().startswith("arxiv"):
            raise ValueError(f"status is 'preprint' but venue is {self.venue!r}; set status: published, or venue: null")
        if not self.scenario:
            raise ValueError(problem("scenario is empty", "write at least one of static, streaming, serving, or [general] when no "
                                     "deployment scenario applies (surveys, accuracy benchmarks)"))
        if self.kind == "method" and self.training_free is None:
            raise ValueError(problem("training_free is missing for a method", "write training_free: true when the method works "
                                     "on a trained model without any (re)training, false otherwise"))
        today = dt.date.today()
        if self.year > today.year:
            raise ValueError(problem(f"year {self.year} is in the future (the current year is {today.year})",
                                     "year is the venue's year, or the first version's year for preprints"))
        if self.first_day > today:
            raise ValueError(problem(f"date {self.date} is in the future (today is {today.isoformat()})",
                                     "date is the first public version's date, e.g. the arXiv v1 submission date"))
        if self.identifiers.arxiv and len(self.date) != 10 and self.added >= FULL_DATE_REQUIRED_FROM:
            raise ValueError(problem(f"date {self.date} has no day, but the paper has arXiv id {self.identifiers.arxiv}",
                                     f"write the first version's date YYYY-MM-DD ('Submitted on' of "
                                     f"https://arxiv.org/abs/{self.identifiers.arxiv}v1)"))
        venue_year = VENUE_YEAR_RE.search(self.venue or "")
        if venue_year and int(venue_year.group(0)) != self.year:
            raise ValueError(problem(f"year {self.year} differs from the year {venue_year.group(0)} that venue {self.venue!r} names",
                                     f"write year: {venue_year.group(0)} (the venue's year), or correct the venue"))
        if self.date_year > self.year:
            raise ValueError(problem(f"year {self.year} is before the first version's date {self.date}",
                                     f"write year: {self.date_year} or later (the venue's year, or the first version's year "
                                     "for preprints)"))
        if self.identifiers.arxiv:
            ym = arxiv_yymm(self.identifiers.arxiv)
            late = ym is not None and _submitted_before_announcement(self.date, ym)
            if ym and (self.date_year, self.date_month) != ym and not late:
                raise ValueError(
                    f"arXiv id {self.identifiers.arxiv} was first posted {ym[0]}-{ym[1]:02d} but date is {self.date}; "
                    f"date is the first version's date (a submission up to {HELD_MONTHS} months before the id's month, "
                    f"announced late, is also accepted when the date has its day)"
                )
            if ym and ym[0] > self.year and not late:
                raise ValueError(problem(f"year {self.year} is before {ym[0]}, the year of arXiv id {self.identifiers.arxiv}",
                                         f"write year: {ym[0]} or later (the venue's year, or the first version's year)"))
        if self.candidate and self.source != "arxiv-ingest":
            raise ValueError("candidate: true is only for entries with source: arxiv-ingest")
        if self.added < self.first_day:
            raise ValueError(f"added ({self.added}) is before the paper's date ({self.date})")
        return self

    @property
    def date_year(self) -> int:
        return int(self.date[:4])

    @property
    def date_month(self) -> int:
        return int(self.date[5:7])

    @property
    def first_day(self) -> dt.date:
        """The first version's date; the 1st of the month when only the month is known."""
        return dt.date.fromisoformat(self.date if len(self.date) == 10 else self.date + "-01")

    # ---- derived views (used by exports and the site) ----
    @property
    def primary_node(self) -> str:
        return next(p.node for p in self.placements if p.primary)

    def stages(self, tax: Taxonomy) -> list[str]:
        out: list[str] = []
        for p in self.placements:
            s = tax.node_by_id[p.node].stage
            if s and s not in out:
                out.append(s)
        return out

    def dimension_nodes(self, tax: Taxonomy) -> list[str]:
        out: list[str] = []
        for p in self.placements:
            d = tax.dimension_for(p.node, self.modality)
            if d and d not in out:
                out.append(d)
        return out

    @property
    def url(self) -> str:
        return str(self.links.paper)

    @property
    def official_code(self) -> str | None:
        return next((str(c.url) for c in self.links.code if c.official), None)

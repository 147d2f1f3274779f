"""One ingestion run: fetch each query, skip what is known, score, classify, write candidates."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from lvlm_atlas.catalog.taxonomy import Taxonomy
from lvlm_atlas.ingest.classify import Classifier
from lvlm_atlas.ingest.config import IngestConfig
from lvlm_atlas.ingest.corpus import load_papers
from lvlm_atlas.ingest.dedup import DedupIndex, Known, catalog_known
from lvlm_atlas.ingest.fetch import ArxivSource, BadEntry, FetchError
from lvlm_atlas.ingest.record import ArxivRecord
from lvlm_atlas.ingest.rejected import as_known, load_rejected
from lvlm_atlas.ingest.relevance import Relevance, relevance
from lvlm_atlas.ingest.write import Candidate, choose_id, paper_data, short_name, write_candidate

log = logging.getLogger(__name__)


@dataclass
class Skipped:
    record: ArxivRecord
    why: str


INVALID_LABEL = "this run (could not be written)"


@dataclass
class RunResult:
    since: dt.date
    until: dt.date
    fetched: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    duplicates: list[Skipped] = field(default_factory=list)
    off_topic: list[tuple[ArxivRecord, Relevance]] = field(default_factory=list)
    out_of_window: list[Skipped] = field(default_factory=list)
    invalid: list[Skipped] = field(default_factory=list)        # failed validation: full message in `why`
    bad_entries: list[BadEntry] = field(default_factory=list)   # arXiv entries that are not usable records
    withdrawn: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)          # written, with something the reviewer should see
    errors: list[str] = field(default_factory=list)
    queries_done: int = 0
    queries_total: int = 0
    capped_queries: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def skipped(self) -> int:
        """Records deliberately not proposed: off-topic, withdrawn, outside the window."""
        return len(self.off_topic) + len(self.withdrawn) + len(self.out_of_window)

    @property
    def invalid_count(self) -> int:
        """Entries that should have been readable but were not: bad arXiv entries and failed validation."""
        return len(self.invalid) + len(self.bad_entries)

    def counts(self) -> dict[str, int]:
        return {"fetched": self.fetched, "written": len(self.candidates), "duplicate": len(self.duplicates),
                "skipped": self.skipped, "invalid": self.invalid_count}

    def add_bad_entries(self, entries: list[BadEntry]) -> None:
        """Record bad arXiv entries once each (several queries can return the same entry)."""
        seen = {(b.ident, b.reason) for b in self.bad_entries}
        for b in entries:
            if (b.ident, b.reason) not in seen:
                seen.add((b.ident, b.reason))
                self.bad_entries.append(b)


class Ingestor:
    """Holds the state of one run: what is known, which ids are taken, the trained classifier."""

    def __init__(self, config: IngestConfig, taxonomy: Taxonomy, papers_dir: Path, rejected_path: Path,
                 today: dt.date, training_dirs: list[Path] | None = None) -> None:
        self.config, self.taxonomy, self.papers_dir, self.today = config, taxonomy, papers_dir, today
        known, ids = catalog_known(papers_dir)
        self.index = DedupIndex()
        for k in known + as_known(load_rejected(rejected_path)):
            self.index.add(k)
        self.taken = set(ids)
        papers = load_papers(training_dirs or [papers_dir], taxonomy, warn=lambda m: log.warning(m))
        self.classifier = Classifier.from_papers(taxonomy, papers, config)

    def consider(self, record: ArxivRecord, result: RunResult, min_relevance: float | None = None,
                 source: str = "arxiv-ingest") -> Candidate | None:
        """Dedup, score, classify and write one record; returns the candidate when one was written."""
        dup = self.index.match(record.arxiv_id, record.doi, record.title)
        if dup:
            known, why = dup
            if known.label == INVALID_LABEL and known.arxiv == record.arxiv_id:
                return None  # already listed once as invalid in this run
            result.duplicates.append(Skipped(record, f"{why} as {known.label}"))
            return None
        if record.withdrawn:
            self.index.add(Known(label=f"this run: {record.arxiv_id} (withdrawn)", arxiv=record.arxiv_id))
            result.withdrawn.append(Skipped(record, f"withdrawn: {record.comment}"))
            return None
        try:
            return self._propose(record, result, min_relevance, source)
        except (ValidationError, FileExistsError, ValueError) as exc:
            # listed once as invalid, never also as a duplicate of itself when another query returns it
            self.index.by_arxiv[record.arxiv_id] = Known(label=INVALID_LABEL, arxiv=record.arxiv_id)
            result.invalid.append(Skipped(record, str(exc).strip()))
            return None

    def _propose(self, record: ArxivRecord, result: RunResult, min_relevance: float | None,
                 source: str) -> Candidate | None:
        text = f"{record.title}. {record.abstract}"
        rel = relevance(record.title, record.abstract, self.config.relevance, self.classifier.max_similarity(text))
        threshold = self.config.relevance.threshold if min_relevance is None else min_relevance
        self.index.add(Known(label=f"this run: {record.arxiv_id}", arxiv=record.arxiv_id, doi=record.doi, title=record.title))
        if rel.score < threshold:
            result.off_topic.append((record, rel))
            return None
        cls = self.classifier.classify(record.title, record.abstract)
        paper_id = choose_id(short_name(record.title), record, self.taken)
        data = paper_data(record, cls, paper_id, self.taxonomy, self.today, source=source)
        reasons = rel.reasons() + cls.reasons()
        if record.other_dois:
            reasons.append(f"arXiv lists further DOIs, not kept: {', '.join(record.other_dois)}")
        what = "candidate awaiting review" if source == "arxiv-ingest" else "scaffold: review every field"
        header = [f"arXiv ingestion {self.today.isoformat()}: {what}.",
                  f"proposed {cls.primary} (confidence {cls.confidence:.2f}); " + "; ".join(reasons)]
        path = write_candidate(self.papers_dir, data, self.taxonomy, header)
        self.taken.add(paper_id)
        if record.other_dois:
            result.notes.append(Skipped(record, f"kept DOI {record.doi}; arXiv also lists {', '.join(record.other_dois)}"))
        cand = Candidate(id=paper_id, record=record, classification=cls, relevance=rel.score, reasons=reasons, path=path)
        result.candidates.append(cand)
        return cand


def run_ingest(config: IngestConfig, taxonomy: Taxonomy, source: ArxivSource, since: dt.date, until: dt.date,
               papers_dir: Path, rejected_path: Path, today: dt.date,
               training_dirs: list[Path] | None = None) -> RunResult:
    """Query arXiv for submissions in [since, until] and write new candidates into `papers_dir`.

    Each candidate is written (atomically) as soon as it is validated, so a run that fails part-way keeps
    everything it had already accepted; the failure is recorded in `RunResult.errors`.
    """
    if until < since:
        raise ValueError(f"--until {until} is before --since {since}")
    result = RunResult(since=since, until=until, queries_total=len(config.queries))
    ingestor = Ingestor(config, taxonomy, papers_dir, rejected_path, today, training_dirs)
    for spec in config.queries:
        query = config.search_query(spec, since, until)
        try:
            records = source.search(query)
        except FetchError as exc:
            result.errors.append(f"query for {spec.node}: {exc}")
            break
        finally:
            result.add_bad_entries(source.bad_entries)
        result.queries_done += 1
        result.fetched += len(records)
        if len(records) >= source.settings.max_results_per_query:
            result.capped_queries.append(spec.node)
        for rec in records:
            if not since <= rec.published <= until:
                result.out_of_window.append(Skipped(rec, f"first version {rec.published} outside the window"))
                continue
            ingestor.consider(rec, result)
    return result

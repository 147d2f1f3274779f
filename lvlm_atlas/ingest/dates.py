"""First-version dates from arXiv for catalog entries that only have a month (`date: "2024-03"`).

The arXiv API's `<published>` element is the submission time of version 1 (UTC), which is what the
catalog's `date` means (docs/contributing.md). `atlas dates` asks the API for the entries' ids in
batches and rewrites only their `date:` line, each file atomically and only when the rewritten entry
still validates; a re-run finds nothing left to do. With `--check` it also compares the full dates the
catalog already has and lists the ones arXiv disagrees with (it never changes them on its own).

The network side is `ArxivSource.by_ids` (retries, backoff, unreadable entries set aside), so one bad
record never stops the run. Entries arXiv does not return are listed, not guessed.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lvlm_atlas.ingest.fetch import FetchError

BATCH = 50            # ids per API request (arXiv's id_list queries stay short and fast)
DATE_LINE_RE = re.compile(r"^date:[ \t]*([\"']?)(\d{4}-\d{2}(?:-\d{2})?)\1[ \t]*$", re.M)


@dataclass(frozen=True)
class Entry:
    path: Path
    id: str
    arxiv: str
    date: str                 # as written: YYYY-MM or YYYY-MM-DD


@dataclass(frozen=True)
class Change:
    entry: Entry
    new: str                  # YYYY-MM-DD from arXiv


@dataclass
class DatesResult:
    filled: list[Change] = field(default_factory=list)        # month-only dates completed
    disagree: list[Change] = field(default_factory=list)      # full dates arXiv disagrees with (--check)
    confirmed: int = 0                                         # full dates arXiv agrees with (--check)
    not_found: list[Entry] = field(default_factory=list)      # ids arXiv returned no readable entry for
    refused: list[tuple[Entry, str]] = field(default_factory=list)   # a date we would not write, and why
    error: str | None = None                                   # arXiv failed part-way: what was done is kept

    @property
    def problems(self) -> int:
        return len(self.not_found) + len(self.refused)


def entries(papers_dir: Path, include_full: bool = False) -> list[Entry]:
    """Catalog entries with an arXiv id and a month-only date (every dated arXiv entry with `include_full`)."""
    out = []
    for path in sorted(papers_dir.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue          # `atlas validate` reports unreadable files; nothing to do here
        if not isinstance(data, dict):
            continue
        arxiv_id = str(((data.get("identifiers") or {}).get("arxiv")) or "").strip()
        date = str(data.get("date") or "").strip()
        if not arxiv_id or not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", date):
            continue
        if len(date) == 7 or include_full:
            out.append(Entry(path, str(data.get("id") or path.stem), arxiv_id, date))
    return out


def _months_before(date: dt.date, arxiv_id: str) -> int | None:
    """How many months `date` lies before the month of a new-style arXiv id (None for old-style ids)."""
    m = re.match(r"^(\d{2})(\d{2})\.\d{4,5}$", arxiv_id)
    if not m:
        return None
    year, month = 2000 + int(m.group(1)), int(m.group(2))
    return (year - date.year) * 12 + (month - date.month)


def judge(entry: Entry, published: dt.date, held_months: int | None = None) -> str | None:
    """Why arXiv's first-version date cannot be written for this entry, or None when it can (the same
    window the validator accepts: the id's month or up to HELD_MONTHS before it)."""
    from lvlm_atlas.catalog.models import HELD_MONTHS

    held_months = HELD_MONTHS if held_months is None else held_months
    gap = _months_before(published, entry.arxiv)
    if gap is not None and not 0 <= gap <= held_months:
        return (f"arXiv gives {published.isoformat()} for {entry.arxiv}, which is not within {held_months} months "
                f"before the id's month; check the id")
    return None


def rewrite(text: str, new: str) -> str:
    """The file text with only its `date:` line changed to `date: "new"`."""
    out, n = DATE_LINE_RE.subn(f'date: "{new}"', text, count=1)
    if n != 1:
        raise ValueError("no 'date:' line of the form date: \"YYYY-MM\" found")
    return out


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _validates(text: str, tax) -> str | None:
    """None when the entry text is a valid paper, else the validator's message."""
    from pydantic import ValidationError

    from lvlm_atlas.catalog.models import Paper

    try:
        Paper.model_validate(yaml.safe_load(text), context={"taxonomy": tax})
    except ValidationError as exc:
        return "; ".join(" ".join(str(e["msg"]).split()) for e in exc.errors())
    return None


def fill_dates(source, papers_dir: Path, tax, check: bool = False, dry_run: bool = False,
               limit: int | None = None, batch: int = BATCH) -> DatesResult:
    """Ask arXiv for the entries' first-version dates; fill month-only dates (unless `dry_run`)."""
    todo = entries(papers_dir, include_full=check)
    if limit is not None:
        todo = todo[:limit]
    result = DatesResult()
    by_id: dict[str, list[Entry]] = {}
    for e in todo:
        by_id.setdefault(e.arxiv, []).append(e)
    ids = list(by_id)
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        try:
            found = {r.arxiv_id: r for r in source.by_ids(chunk)}
        except FetchError as exc:
            result.error = str(exc)       # the batches done so far stay written; a rerun continues
            break
        for arxiv_id in chunk:
            record = found.get(arxiv_id)
            for e in by_id[arxiv_id]:
                if record is None:
                    result.not_found.append(e)
                    continue
                new = record.published.isoformat()
                why = judge(e, record.published)
                if why:
                    result.refused.append((e, why))
                elif len(e.date) == 10:
                    if e.date == new:
                        result.confirmed += 1
                    else:
                        result.disagree.append(Change(e, new))
                else:
                    _fill(e, new, tax, dry_run, result)
    return result


def _fill(e: Entry, new: str, tax, dry_run: bool, result: DatesResult) -> None:
    text = e.path.read_text(encoding="utf-8")
    try:
        updated = rewrite(text, new)
    except ValueError as exc:
        result.refused.append((e, str(exc)))
        return
    problem = _validates(updated, tax)
    if problem:
        result.refused.append((e, f"the entry would not validate with date {new}: {problem}"))
        return
    if not dry_run:
        write_atomic(e.path, updated)
    result.filled.append(Change(e, new))


def report_markdown(result: DatesResult, dry_run: bool = False) -> str:
    """A Markdown section for the ingestion pull request (what changed and what still needs a person)."""
    verb = "would fill" if dry_run else "filled"
    lines = ["## First-version dates from arXiv", ""]
    if result.error:
        lines += [f"arXiv failed part-way ({result.error}); the dates below were written, a rerun continues.", ""]
    lines += [f"{verb} {len(result.filled)} month-only date(s); {len(result.not_found)} id(s) not returned by "
              f"arXiv; {len(result.refused)} refused."]
    if result.filled:
        lines += ["", "| entry | arXiv id | was | now |", "|---|---|---|---|"]
        lines += [f"| {c.entry.id} | {c.entry.arxiv} | {c.entry.date} | {c.new} |" for c in result.filled]
    if result.disagree:
        lines += ["", "Full dates arXiv disagrees with (not changed; please check):", "",
                  "| entry | arXiv id | catalog | arXiv v1 |", "|---|---|---|---|"]
        lines += [f"| {c.entry.id} | {c.entry.arxiv} | {c.entry.date} | {c.new} |" for c in result.disagree]
    if result.not_found:
        lines += ["", "Not returned by arXiv: " + ", ".join(f"{e.id} ({e.arxiv})" for e in result.not_found)]
    if result.refused:
        lines += ["", "Refused:"] + [f"- {e.id} ({e.arxiv}): {why}" for e, why in result.refused]
    return "\n".join(lines) + "\n"

"""Find new arXiv papers, deduplicate and classify them, and write candidate entries plus a report."""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from lvlm_atlas import paths
from lvlm_atlas.catalog.taxonomy import load_taxonomy

DEFAULT_REPORT = paths.ROOT / "build" / "ingest-report.md"
EXIT_INVALID = 3   # the run finished, but some records were invalid (listed in the report); see docs/ingestion.md


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}; write YYYY-MM-DD") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    window = p.add_argument_group("window (submission dates, inclusive, UTC)")
    window.add_argument("--since", type=_date, help="first submission date, YYYY-MM-DD")
    window.add_argument("--days", type=int, help="instead of --since: the last N days up to --until")
    window.add_argument("--until", type=_date, help="last submission date (default: today, UTC)")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="Markdown report path (default build/ingest-report.md)")
    p.add_argument("--papers-dir", type=Path, default=paths.PAPERS, help="where candidates are written (default catalog/papers)")
    p.add_argument("--config", type=Path, default=None, help="ingestion settings (default catalog/ingest.yaml)")
    p.add_argument("--rejected", type=Path, default=None, help="rejected list (default catalog/ingest-rejected.yaml)")
    p.add_argument("--reject", metavar="ARXIV_ID", help="record a human rejection: delete the candidate file and never propose it again")
    p.add_argument("--reason", default=None, help="with --reject: why (kept in the rejected list)")
    p.add_argument("--quiet", action="store_true", help="only warnings and the summary line")


def _reject(args, rejected_path: Path) -> int:
    import yaml

    from lvlm_atlas.ingest.record import split_arxiv_id
    from lvlm_atlas.ingest.rejected import Rejection, add_rejection

    try:
        bare, _ = split_arxiv_id(args.reject)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    title, removed = None, []
    for path in sorted(args.papers_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if str((data.get("identifiers") or {}).get("arxiv") or "") == bare:
            if not data.get("candidate"):
                print(f"error: {path} is an accepted catalog entry (candidate is not true); edit or delete it by hand",
                      file=sys.stderr)
                return 1
            title = data.get("title")
            path.unlink()
            removed.append(path.name)
    added = add_rejection(Rejection(arxiv=bare, title=title, reason=args.reason, date=dt.date.today()), rejected_path)
    print(f"{bare}: {'added to' if added else 'already in'} {rejected_path.name}"
          + (f"; removed {', '.join(removed)}" if removed else ""))
    return 0


def run(args) -> int:
    from lvlm_atlas.ingest.config import INGEST_CONFIG, ConfigError, load_config
    from lvlm_atlas.ingest.fetch import ArxivSource
    from lvlm_atlas.ingest.pipeline import run_ingest
    from lvlm_atlas.ingest.rejected import REJECTED_PATH
    from lvlm_atlas.ingest.report import render_report
    from lvlm_atlas.catalog.atomic import write_text_atomic as atomic_write_text

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    rejected_path = args.rejected or REJECTED_PATH
    if args.reject:
        return _reject(args, rejected_path)
    today = dt.datetime.now(dt.timezone.utc).date()
    until = args.until or today
    if (args.since is None) == (args.days is None):
        print("error: give exactly one of --since DATE or --days N", file=sys.stderr)
        return 2
    if args.days is not None and args.days < 1:
        print(f"error: --days {args.days}: write 1 or more days (e.g. --days 4)", file=sys.stderr)
        return 2
    since = args.since or until - dt.timedelta(days=args.days - 1)
    tax = load_taxonomy()
    try:
        config = load_config(args.config or INGEST_CONFIG, taxonomy=tax)
        result = run_ingest(config, tax, ArxivSource(config.client), since, until, args.papers_dir,
                            rejected_path, today)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(args.report, render_report(result, tax))
    c = result.counts()
    print(f"ingest {since}..{until}: {c['fetched']} fetched, {c['written']} written, {c['duplicate']} duplicate, "
          f"{c['skipped']} skipped, {c['invalid']} invalid; report: {args.report}")
    for cand in result.candidates:
        print(f"  + {cand.path}  {cand.classification.primary} ({cand.classification.confidence:.2f})")
    for b in result.bad_entries:
        print(f"invalid: {b.ident}: {b.reason}", file=sys.stderr)
    for s in result.invalid:
        print(f"invalid: {s.record.arxiv_id}: {s.why.splitlines()[0] if s.why else ''} (full message in the report)",
              file=sys.stderr)
    for e in result.errors:
        print(f"error: {e}", file=sys.stderr)
    if not result.ok:
        return 1
    return EXIT_INVALID if result.invalid_count else 0

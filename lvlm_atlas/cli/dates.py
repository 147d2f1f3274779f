"""Fill month-only first-version dates from arXiv (and, with --check, compare the full ones).

Asks the arXiv API for every catalog entry whose `date` has no day and writes arXiv's version-1
submission date into its `date:` line (nothing else changes; each file is replaced atomically and only
if it still validates). Needs network access to export.arxiv.org; the scheduled ingestion workflow runs
it so the dates arrive in the reviewed ingestion pull request.

exit codes: 0 done; 1 arXiv could not be reached or failed part-way (files written so far are kept);
2 usage error; 3 done, but some entries were not found on arXiv or were refused (listed).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lvlm_atlas import paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--papers-dir", type=Path, default=paths.PAPERS, help="catalog papers folder (default catalog/papers)")
    p.add_argument("--check", action="store_true",
                   help="also compare the full dates already in the catalog with arXiv and list disagreements "
                        "(they are never changed automatically)")
    p.add_argument("--dry-run", action="store_true", help="ask arXiv and report, but write nothing")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="handle at most N entries (e.g. to try it out)")
    p.add_argument("--report", type=Path, default=None, metavar="FILE",
                   help="append a Markdown section with every change to FILE (the ingestion PR body)")
    p.add_argument("--config", type=Path, default=None, help="ingestion settings (default catalog/ingest.yaml)")


def run(args) -> int:
    from lvlm_atlas.catalog.taxonomy import load_taxonomy
    from lvlm_atlas.cli._checks import fail
    from lvlm_atlas.ingest.config import INGEST_CONFIG, ConfigError, load_config
    from lvlm_atlas.ingest.dates import entries, fill_dates, report_markdown
    from lvlm_atlas.ingest.fetch import ArxivSource

    if not args.papers_dir.is_dir():
        return fail(f"--papers-dir {args.papers_dir}: no such folder; write the catalog's papers folder "
                    "(default catalog/papers)")
    if args.limit is not None and args.limit < 1:
        return fail(f"--limit {args.limit}: write a positive number of entries, e.g. --limit 20")
    if args.report is not None and not args.report.parent.is_dir():
        return fail(f"--report {args.report}: folder {args.report.parent} does not exist; create it or write another path")
    tax = load_taxonomy()
    try:
        config = load_config(args.config or INGEST_CONFIG, taxonomy=tax)
    except ConfigError as exc:
        return fail(exc)
    todo = entries(args.papers_dir, include_full=args.check)
    if not todo:
        print("nothing to do: every entry with an arXiv id has a full first-version date")
        return 0
    print(f"asking arXiv for {min(len(todo), args.limit or len(todo))} entr{'y' if len(todo) == 1 else 'ies'}")
    source = ArxivSource(config.client)
    result = fill_dates(source, args.papers_dir, tax, check=args.check, dry_run=args.dry_run, limit=args.limit)
    verb = "would fill" if args.dry_run else "filled"
    for c in result.filled:
        print(f"  {verb} {c.entry.id}: {c.entry.date} -> {c.new}")
    for c in result.disagree:
        print(f"  differs {c.entry.id}: catalog {c.entry.date}, arXiv v1 {c.new} (not changed)")
    for e in result.not_found:
        print(f"  not found {e.id}: arXiv returned no readable entry for {e.arxiv}")
    for e, why in result.refused:
        print(f"  refused {e.id}: {why}")
    for bad in source.bad_entries:
        print(f"  unreadable arXiv entry {bad.ident}: {bad.reason}")
    print(f"{verb} {len(result.filled)} date(s); {len(result.disagree)} full date(s) differ; "
          f"{len(result.not_found)} not found; {len(result.refused)} refused"
          + (f"; {result.confirmed} full date(s) confirmed" if args.check else ""))
    if args.report is not None:
        with args.report.open("a", encoding="utf-8") as fh:
            fh.write("\n" + report_markdown(result, dry_run=args.dry_run))
    if result.error:
        return fail(result.error, 1)
    return 3 if (result.problems or result.disagree) else 0

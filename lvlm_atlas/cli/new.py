"""Scaffold one catalog entry from an arXiv id (metadata fetched, placement and facets proposed)."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from lvlm_atlas import paths
from lvlm_atlas.catalog.taxonomy import load_taxonomy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arxiv_id", help="arXiv id, e.g. 2403.06764, cs/0601001 or https://arxiv.org/abs/2403.06764v2")
    p.add_argument("--papers-dir", type=Path, default=paths.PAPERS, help="where the entry is written (default catalog/papers)")
    p.add_argument("--manual", action="store_true",
                   help="write source: manual (you will review it now) instead of an ingestion candidate")
    p.add_argument("--config", type=Path, default=None, help="ingestion settings (default catalog/ingest.yaml)")
    p.add_argument("--rejected", type=Path, default=None, help="rejected list (default catalog/ingest-rejected.yaml)")


NEW_TIMEOUT_S = 15      # one paper: a short timeout and at most one retry, so an offline machine fails fast
NEW_MAX_RETRIES = 1


def _already_known(bare: str, papers_dir: Path, rejected_path: Path) -> str | None:
    """The catalog file (or rejection) that already holds this arXiv id, read without the network."""
    from lvlm_atlas.ingest.dedup import catalog_known
    from lvlm_atlas.ingest.rejected import load_rejected

    known, _ = catalog_known(papers_dir)
    for k in known:
        if k.arxiv and split_or_none(k.arxiv) == bare:
            stem = k.label.rsplit(" ", 1)[-1]
            return f"{bare} is already in the catalog ({k.label}); edit {papers_dir / (stem + '.yaml')} instead"
    for r in load_rejected(rejected_path):
        if split_or_none(getattr(r, "arxiv", "") or "") == bare:
            return (f"{bare} is on the rejected list {rejected_path}; remove it from that list first if it "
                    f"should be added after all")
    return None


def split_or_none(text: str) -> str | None:
    from lvlm_atlas.ingest.record import split_arxiv_id

    try:
        return split_arxiv_id(str(text))[0]
    except ValueError:
        return None


def run(args) -> int:
    import dataclasses

    from lvlm_atlas.cli._checks import fail
    from lvlm_atlas.ingest.config import INGEST_CONFIG, ConfigError, load_config
    from lvlm_atlas.ingest.fetch import ArxivSource, FetchError
    from lvlm_atlas.ingest.pipeline import Ingestor, RunResult
    from lvlm_atlas.ingest.record import split_arxiv_id
    from lvlm_atlas.ingest.rejected import REJECTED_PATH

    try:
        bare, _ = split_arxiv_id(args.arxiv_id)
    except ValueError as exc:
        return fail(exc)
    rejected_path = args.rejected or REJECTED_PATH
    if not args.papers_dir.is_dir():
        return fail(f"--papers-dir {args.papers_dir}: no such folder; write the catalog's papers folder "
                    "(default catalog/papers)")
    try:
        known = _already_known(bare, args.papers_dir, rejected_path)   # before any network call
    except ValueError as exc:
        return fail(exc)
    if known:
        return fail(known)
    tax = load_taxonomy()
    today = dt.datetime.now(dt.timezone.utc).date()
    try:
        config = load_config(args.config or INGEST_CONFIG, taxonomy=tax)
    except ConfigError as exc:
        return fail(exc)
    client = dataclasses.replace(config.client, timeout_seconds=min(config.client.timeout_seconds, NEW_TIMEOUT_S),
                                 max_retries=min(config.client.max_retries, NEW_MAX_RETRIES))
    try:
        source = ArxivSource(client)
        records = source.by_ids([bare])
    except FetchError as exc:
        return fail(exc, 1)
    if not records:
        bad = source.bad_entries[0].reason if source.bad_entries else None
        return fail(f"arXiv's entry for {bare} is unreadable ({bad})" if bad else
                    f"arXiv has no paper {bare}; check the id", 1)
    ingestor = Ingestor(config, tax, args.papers_dir, rejected_path, today)
    result = RunResult(since=records[0].published, until=records[0].published)
    cand = ingestor.consider(records[0], result, min_relevance=0.0,
                             source="manual" if args.manual else "arxiv-ingest")
    if cand is None:
        why = (result.duplicates or result.invalid or result.withdrawn)[0].why
        return fail(f"{bare} not written: {why}", 1)
    rel_note = "" if cand.relevance >= config.relevance.threshold else \
        f" (relevance {cand.relevance:.2f} is below the ingestion threshold: is it on-topic?)"
    print(f"wrote {cand.path}{rel_note}")
    print(f"  proposed {cand.classification.primary} (confidence {cand.classification.confidence:.2f}): "
          + "; ".join(cand.reasons))
    print("  next: check placement and facets, write the summary in your own words, then validate.")
    return 0

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


def run(args) -> int:
    from lvlm_atlas.ingest.config import INGEST_CONFIG, ConfigError, load_config
    from lvlm_atlas.ingest.fetch import ArxivSource, FetchError
    from lvlm_atlas.ingest.pipeline import Ingestor, RunResult
    from lvlm_atlas.ingest.record import split_arxiv_id
    from lvlm_atlas.ingest.rejected import REJECTED_PATH

    try:
        bare, _ = split_arxiv_id(args.arxiv_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tax = load_taxonomy()
    today = dt.datetime.now(dt.timezone.utc).date()
    try:
        config = load_config(args.config or INGEST_CONFIG, taxonomy=tax)
        records = ArxivSource(config.client).by_ids([bare])
    except (ConfigError, FetchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not records:
        print(f"error: arXiv has no paper {bare}; check the id", file=sys.stderr)
        return 1
    ingestor = Ingestor(config, tax, args.papers_dir, args.rejected or REJECTED_PATH, today)
    result = RunResult(since=records[0].published, until=records[0].published)
    cand = ingestor.consider(records[0], result, min_relevance=0.0,
                             source="manual" if args.manual else "arxiv-ingest")
    if cand is None:
        why = (result.duplicates or result.invalid)[0].why
        print(f"error: {bare} not written: {why}", file=sys.stderr)
        return 1
    rel_note = "" if cand.relevance >= config.relevance.threshold else \
        f" (relevance {cand.relevance:.2f} is below the ingestion threshold: is it on-topic?)"
    print(f"wrote {cand.path}{rel_note}")
    print(f"  proposed {cand.classification.primary} (confidence {cand.classification.confidence:.2f}): "
          + "; ".join(cand.reasons))
    print("  next: check placement and facets, write the summary in your own words, then validate.")
    return 0

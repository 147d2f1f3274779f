"""Fetch citation counts and references from Semantic Scholar into catalog/enrichment/."""
from __future__ import annotations

import asyncio
import os
import sys

from lvlm_atlas.cli._catalog import catalog_or_report
from lvlm_atlas.enrich.store import STORE_PATH, SUGGESTIONS_PATH, StoreError

API_KEY_ENV = "SEMANTIC_SCHOLAR_API_KEY"


def add_arguments(parser) -> None:
    parser.add_argument("--only", nargs="+", metavar="ID", help="enrich only these catalog ids")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="most requests per second (default 1; the public API allows about 1 with a key)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")
    parser.add_argument("--refresh-references", action="store_true",
                        help="refetch reference lists even when a paper's reference count is unchanged")
    parser.add_argument("--api-url", default=os.environ.get("SEMANTIC_SCHOLAR_API_URL", "https://api.semanticscholar.org"),
                        help="API base URL (default: the public API)")


def run(args) -> int:
    try:   # the network client lives in the 'ingest' extra; `atlas --help` must work without it
        from lvlm_atlas.enrich.client import RateLimiter, S2Client, S2Error
        from lvlm_atlas.enrich import runner
    except ImportError as exc:
        print(f"error: atlas enrich needs the 'ingest' extra ({exc.name} is missing); "
              "write: pip install 'lvlm-atlas[ingest]'", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print("error: --rate must be positive", file=sys.stderr)
        return 2
    catalog = catalog_or_report()
    if catalog is None:
        return 1
    api_key = os.environ.get(API_KEY_ENV) or None
    if not api_key:
        print(f"note: {API_KEY_ENV} is not set; using the shared public rate limit", file=sys.stderr)
    client = S2Client(api_key=api_key, api_url=args.api_url, timeout=args.timeout,
                      limiter=RateLimiter(min_interval=1.0 / args.rate),
                      log=lambda m: print(m, file=sys.stderr))
    try:
        out = asyncio.run(runner.enrich(catalog, client, only=args.only, refresh_references=args.refresh_references,
                                 log=lambda m: print(m, file=sys.stderr)))
    except (S2Error, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"enriched {len(out.enriched)} papers into {STORE_PATH.relative_to(STORE_PATH.parents[2])}"
          f"{' (resumed)' if out.resumed else ''}; {out.reference_calls} reference lists fetched")
    if out.not_found:
        print(f"not known to Semantic Scholar ({len(out.not_found)}): {', '.join(out.not_found)}")
    if out.failed:
        print(f"references not fetched, retried on the next run ({len(out.failed)}):", file=sys.stderr)
        for pid, why in sorted(out.failed.items()):
            print(f"  {pid}: {why}", file=sys.stderr)
    if out.no_identifier:
        print(f"no arXiv/DOI/ACL/S2 identifier, skipped ({len(out.no_identifier)}): {', '.join(out.no_identifier)}")
    if out.suggestions:
        print(f"{len(out.suggestions)} papers have suggested edits: see "
              f"{SUGGESTIONS_PATH.relative_to(SUGGESTIONS_PATH.parents[2])}")
        for pid, items in sorted(out.suggestions.items()):
            for s in items:
                print(f"  {pid}: {s}")
    return 0

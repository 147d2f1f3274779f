"""Fetch arXiv search results with the `arxiv` package's `Client`, politely and robustly.

The `arxiv.Client` paginates, waits `delay_seconds` between requests and parses the Atom feed. On top of
it this module adds what a scheduled job needs:
- a timeout on every HTTP request (the client sets none);
- a check of every raw response before the client parses it: HTTP 429/5xx, malformed XML, arXiv's error
  feed and unexpectedly empty pages become typed errors (the client would otherwise read a malformed or
  empty first page as "no results");
- retries with exponential backoff (honouring Retry-After), resuming at the offset reached so far.
Both additions live on this module's own client instance (its session), never on library classes.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import arxiv
import requests
from lxml import etree

from lvlm_atlas.ingest.config import ClientSettings
from lvlm_atlas.ingest.record import ArxivRecord

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
RETRY_STATUSES = {429, 500, 502, 503, 504}


class FetchError(RuntimeError):
    """A query could not be fetched, even after retries; the message says what to do."""


class ArxivQueryError(FetchError):
    """arXiv rejected the request (bad query or id): retrying will not help."""


class TransientError(Exception):
    """A failure worth retrying: HTTP 429/5xx, malformed feed, unexpectedly empty page."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


RETRYABLE = (
    TransientError,
    arxiv.HTTPError,
    arxiv.UnexpectedEmptyPageError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Applies a default timeout to every request sent through it."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_feed_message(root) -> str | None:
    """arXiv reports bad requests as a feed with one entry whose id points at /api/errors."""
    for entry in root.iter(f"{ATOM}entry"):
        eid = entry.findtext(f"{ATOM}id") or ""
        if "/api/errors" in eid:
            return (entry.findtext(f"{ATOM}summary") or eid).strip()
    return None


def check_response(resp: requests.Response, *args, **kwargs) -> requests.Response:
    """requests response hook: turn a bad arXiv answer into a typed error before the client parses it."""
    if resp.status_code in RETRY_STATUSES:
        raise TransientError(f"HTTP {resp.status_code} from arXiv", _retry_after(resp))
    root = None
    try:
        root = etree.fromstring(resp.content, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        if resp.status_code == 200:
            raise TransientError(f"malformed Atom feed from arXiv ({exc})") from exc
    message = _error_feed_message(root) if root is not None else None
    if message or resp.status_code != 200:
        raise ArxivQueryError(
            f"arXiv rejected the request (HTTP {resp.status_code}): {message or resp.reason}. "
            f"Check the query terms in catalog/ingest.yaml or the arXiv id. URL: {resp.url}"
        )
    if root.tag != f"{ATOM}feed":
        raise TransientError(f"arXiv answered with <{root.tag}>, not an Atom feed")
    total = int((root.findtext(f"{OPENSEARCH}totalResults") or "0").strip() or 0)
    start = int((root.findtext(f"{OPENSEARCH}startIndex") or "0").strip() or 0)
    if total > start and root.find(f"{ATOM}entry") is None:
        raise TransientError(f"empty page at offset {start} of {total} results")
    return resp


class ArxivSource:
    """Runs arXiv searches and returns `ArxivRecord`s; one instance per ingestion run."""

    def __init__(self, settings: ClientSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        # The client's own retries fire immediately; backoff is done here instead.
        self.client = arxiv.Client(page_size=settings.page_size, delay_seconds=settings.delay_seconds, num_retries=0)
        session = self.client._session  # the client's own Session (see arxiv.Client.__init__)
        adapter = _TimeoutAdapter(settings.timeout_seconds)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.hooks["response"].append(check_response)
        self.requests_retried = 0

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        s = self.settings
        wait = min(s.backoff_max_seconds, s.backoff_seconds * 2 ** (attempt - 1))
        if retry_after is not None:
            wait = max(wait, min(retry_after, s.backoff_max_seconds))
        return wait

    def _collect(self, search: arxiv.Search, what: str) -> list[arxiv.Result]:
        results: list[arxiv.Result] = []
        failures = 0
        while True:
            try:
                for r in self.client.results(search, offset=len(results)):
                    results.append(r)
                    failures = 0
                return results
            except ArxivQueryError:
                raise
            except RETRYABLE as exc:
                failures += 1
                if failures > self.settings.max_retries:
                    raise FetchError(
                        f"giving up on {what} after {failures} failed attempts at offset {len(results)}: {exc}. "
                        f"arXiv may be down or rate-limiting; rerun later (reruns add only what is new)."
                    ) from exc
                wait = self.backoff(failures, getattr(exc, "retry_after", None))
                self.requests_retried += 1
                log.warning("arXiv request failed (%s); retry %d in %.0f s", exc, failures, wait)
                self._sleep(wait)

    def search(self, query: str) -> list[ArxivRecord]:
        """All results of one search query, newest submissions first."""
        search = arxiv.Search(
            query=query,
            max_results=self.settings.max_results_per_query,
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Descending,
        )
        return [ArxivRecord.from_result(r) for r in self._collect(search, f"query {query[:80]!r}...")]

    def by_ids(self, ids: list[str]) -> list[ArxivRecord]:
        search = arxiv.Search(id_list=list(ids), max_results=len(ids))
        return [ArxivRecord.from_result(r) for r in self._collect(search, f"ids {ids}")]

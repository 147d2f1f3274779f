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

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

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


_OFFLINE_MARKERS = (
    ("NameResolutionError", "DNS lookup failed"), ("Failed to resolve", "DNS lookup failed"),
    ("Name or service not known", "DNS lookup failed"), ("Temporary failure in name resolution", "DNS lookup failed"),
    ("nodename nor servname", "DNS lookup failed"), ("getaddrinfo failed", "DNS lookup failed"),
    ("Network is unreachable", "network unreachable"), ("No route to host", "no route to host"),
)


def offline_reason(exc: BaseException) -> str | None:
    """'DNS lookup failed' etc. when a connection error means this machine is offline: retrying with
    backoff would only wait (minutes) for the same answer."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        text = f"{type(e).__name__} {e}"
        for marker, reason in _OFFLINE_MARKERS:
            if marker in text:
                return reason
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return None


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


# An entry the `arxiv` package cannot read (no <id>, a missing or impossible date) is replaced in the raw
# feed by a placeholder with this id prefix and harmless dates, so the package neither raises (one bad
# date would stop the whole query) nor silently drops it (which shifts its paging offsets); the
# placeholder is reported as a bad entry and never becomes a record.
PLACEHOLDER_PREFIX = "http://arxiv.org/abs/lvlm-atlas-bad-entry/"
_PLACEHOLDER_DATE = "2000-01-01T00:00:00Z"


@dataclass
class BadEntry:
    """One arXiv entry that could not be used, with what arXiv said it was and why it was skipped."""
    ident: str          # the entry's <id> as sent (or "(no id)")
    title: str
    reason: str


def _inner_text(el) -> str:
    """The element's content with child markup kept as text: `Fast<b>VLM</b>: x` stays as written."""
    def render(node) -> str:
        tag = etree.QName(node).localname if isinstance(node.tag, str) else ""
        if not tag:  # comments, processing instructions
            return node.tail or ""
        attrs = "".join(f' {etree.QName(k).localname}="{v}"' for k, v in node.attrib.items())
        body = (node.text or "") + "".join(render(c) for c in node)
        return f"<{tag}{attrs}>{body}</{tag}>" + (node.tail or "")
    return (el.text or "") + "".join(render(c) for c in el)


def _parse_date(text: str | None) -> str | None:
    """None when the Atom timestamp is usable, else why not (the same parse as the `arxiv` package's)."""
    if text is None or not text.strip():
        return "missing"
    try:
        dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        return f"{text.strip()!r} is not a valid timestamp ({exc})"
    return None


def repair_entries(root) -> tuple[list[BadEntry], bool]:
    """Fix, in place, what the `arxiv` package would misread in a feed; returns (bad entries, changed).

    - a title, abstract or comment with child elements (markup such as <b>) becomes one text node with
      the markup as text;
    - an entry without <id> or with a missing/invalid <published> or <updated> becomes a placeholder.
    """
    bad: list[BadEntry] = []
    changed = False
    for entry in root.iter(f"{ATOM}entry"):
        title_el = entry.find(f"{ATOM}title")
        title = _inner_text(title_el) if title_el is not None else ""
        # the package reads only the text before an element's first child: flatten the markup into text
        for el in (title_el, entry.find(f"{ATOM}summary"), entry.find("{http://arxiv.org/schemas/atom}comment")):
            if el is not None and len(el):
                text = _inner_text(el)
                for child in list(el):
                    el.remove(child)
                el.text = text
                changed = True
        id_el = entry.find(f"{ATOM}id")
        ident = (id_el.text or "").strip() if id_el is not None else ""
        problems = [] if ident else ["entry without <id>"]
        for name in ("published", "updated"):
            el = entry.find(f"{ATOM}{name}")
            why = _parse_date(el.text if el is not None else None)
            if why:
                problems.append(f"<{name}> {why}")
        if not problems:
            continue
        n = len(bad)
        bad.append(BadEntry(ident or "(no id)", " ".join(title.split()), "; ".join(problems)))
        if id_el is None:
            id_el = etree.SubElement(entry, f"{ATOM}id")
        id_el.text = f"{PLACEHOLDER_PREFIX}{n}"
        for name in ("published", "updated"):
            el = entry.find(f"{ATOM}{name}")
            if el is None:
                el = etree.SubElement(entry, f"{ATOM}{name}")
            el.text = _PLACEHOLDER_DATE
        changed = True
    return bad, changed


class ArxivSource:
    """Runs arXiv searches and returns `ArxivRecord`s; one instance per ingestion run.

    Entries that cannot become a record (see `repair_entries`, or an id that is not an arXiv id) are
    collected in `bad_entries` instead of stopping the query.
    """

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
        session.hooks["response"].append(self._repair_response)
        self.requests_retried = 0
        self.bad_entries: list[BadEntry] = []
        self._page_bad: dict[str, BadEntry] = {}
        self._pages = 0

    def _repair_response(self, resp: requests.Response, *args, **kwargs) -> requests.Response:
        """requests response hook (after `check_response`): repair entries the package would misread."""
        root = etree.fromstring(resp.content, etree.XMLParser(resolve_entities=False, no_network=True))
        bad, changed = repair_entries(root)
        if changed:
            self._pages += 1
            for i, b in enumerate(bad):  # placeholders are numbered per page: "<page>/<n>"
                self._page_bad[f"{self._pages}/{i}"] = b
            resp._content = etree.tostring(root, xml_declaration=True, encoding="UTF-8").replace(
                PLACEHOLDER_PREFIX.encode(), f"{PLACEHOLDER_PREFIX}{self._pages}/".encode())
        return resp

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
            except requests.exceptions.ConnectionError as exc:
                reason = offline_reason(exc)
                if reason is None:
                    failures = self._failed(failures, exc, what, len(results))
                    continue
                raise FetchError(f"cannot reach arXiv (export.arxiv.org): {reason}; this machine looks offline. "
                                 f"Check the network connection and rerun") from exc
            except RETRYABLE as exc:
                failures = self._failed(failures, exc, what, len(results))

    def _failed(self, failures: int, exc: BaseException, what: str, offset: int) -> int:
        """Count one failed attempt: back off before the next, or raise FetchError when out of retries."""
        failures += 1
        if failures > self.settings.max_retries:
            raise FetchError(
                f"giving up on {what} after {failures} failed attempts at offset {offset}: {exc}. "
                f"arXiv may be down or rate-limiting; rerun later (reruns add only what is new)."
            ) from exc
        wait = self.backoff(failures, getattr(exc, "retry_after", None))
        self.requests_retried += 1
        log.warning("arXiv request failed (%s); retry %d in %.0f s", exc, failures, wait)
        self._sleep(wait)
        return failures

    def search(self, query: str) -> list[ArxivRecord]:
        """All results of one search query, newest submissions first."""
        search = arxiv.Search(
            query=query,
            max_results=self.settings.max_results_per_query,
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Descending,
        )
        return self._records(self._collect(search, f"query {query[:80]!r}..."))

    def by_ids(self, ids: list[str]) -> list[ArxivRecord]:
        search = arxiv.Search(id_list=list(ids), max_results=len(ids))
        return self._records(self._collect(search, f"ids {ids}"))

    def _records(self, results: list[arxiv.Result]) -> list[ArxivRecord]:
        """Records of the results; placeholders and unreadable entries go to `bad_entries`, once each."""
        out: list[ArxivRecord] = []
        for r in results:
            if r.entry_id.startswith(PLACEHOLDER_PREFIX):
                bad = self._page_bad.pop(r.entry_id[len(PLACEHOLDER_PREFIX):], None)
                if bad is not None:
                    self.bad_entries.append(bad)
                continue
            try:
                out.append(ArxivRecord.from_result(r))
            except ValueError as exc:
                self.bad_entries.append(BadEntry(r.entry_id or "(no id)", " ".join((r.title or "").split()), str(exc)))
        self._page_bad.clear()
        return out

"""A careful client for the Semantic Scholar Graph API, built on the `semanticscholar` package.

The package does the HTTP work (httpx) and parses answers into its `Paper`/`Reference` objects, but on
its own it is not safe for unattended runs: it answers `{}` for 502/503 and for a 200 whose body is only
`{"error": ...}`, its built-in retry waits up to minutes and only covers 429, it raises bare
`KeyError`/`JSONDecodeError` on malformed bodies, and its reference pager stops silently at the first
page shorter than the requested size (and keeps asking after empty pages that point further). This
module therefore:

* disables the package's own retry and wraps each HTTP call (`CheckedRequester`) with a client-side
  rate limit, bounded retries with exponential backoff on 429, 5xx, timeouts, transport errors and
  malformed bodies, and a check that turns the silent `{}` into an error;
* validates the shape of every answer before the package parses it (`fetch_batch`, `fetch_references`);
* pages references itself (follow `next`, stop at the reference count, on an empty page or at a cap),
  skips `citedPaper: null` entries, matches batch answers to the queried ids by id, and reports a 404
  on one paper as `PaperError` so the run skips that paper and goes on.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import httpx
import tenacity
from semanticscholar.ApiRequester import ApiRequester
from semanticscholar.Paper import Paper as S2Paper
from semanticscholar.Reference import Reference as S2Reference
from semanticscholar.SemanticScholarException import (
    BadQueryParametersException,
    ObjectNotFoundException,
    ServerErrorException,
)

DEFAULT_API_URL = "https://api.semanticscholar.org"
GRAPH_PATH = "/graph/v1"
BATCH_LIMIT = 500          # the batch endpoint accepts at most 500 ids per call
REFERENCES_PAGE = 1000     # the references endpoint returns at most 1000 per page
S2_ID_RE = re.compile(r"^[0-9a-f]{40}$")

BATCH_FIELDS = (
    "paperId", "externalIds", "title", "venue", "publicationVenue", "journal", "year",
    "publicationDate", "publicationTypes", "citationCount", "influentialCitationCount", "referenceCount",
)
REFERENCE_FIELDS = ("paperId", "externalIds")


class S2Error(Exception):
    """The API could not give a usable answer; the message says what happened and what to do."""


class RetryableError(S2Error):
    """A failure worth retrying (rate limit, server error, timeout, empty or malformed body)."""


class PaperError(S2Error):
    """One paper's data cannot be fetched (e.g. HTTP 404 on its references): skip it, go on with the others."""


class EmptyAnswerError(RetryableError):
    """The package returned `{}`: a 502/503 or an error-only body that it swallowed."""


class MalformedAnswerError(RetryableError):
    """The body was not JSON, or not shaped like the documented answer."""


@dataclass
class RateLimiter:
    """At most one request per `min_interval` seconds (client side, shared by all calls)."""

    min_interval: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _last: float | None = None

    async def wait(self) -> None:
        now = self.clock()
        if self._last is not None:
            delay = self._last + self.min_interval - now
            if delay > 0:
                await self.sleep(delay)
                now = self.clock()
        self._last = now


@dataclass
class RetryPolicy:
    attempts: int = 6            # total tries per HTTP call
    base_delay: float = 2.0      # seconds before the 2nd try; doubles each time
    max_delay: float = 60.0

    def delay(self, failed_attempts: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))


def classify(exc: BaseException) -> S2Error:
    """Map what the package or httpx raised to our error kinds (retryable or not)."""
    if isinstance(exc, S2Error):
        return exc
    if isinstance(exc, tenacity.RetryError) and exc.last_attempt.failed:
        exc = exc.last_attempt.exception()  # the package's single-try wrapper re-wraps its 429 error
    if isinstance(exc, ConnectionRefusedError):  # the package's way of saying HTTP 429
        return RetryableError("rate limited by Semantic Scholar (HTTP 429)")
    if isinstance(exc, ServerErrorException):
        return RetryableError(f"Semantic Scholar server error: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"request timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return RetryableError(f"network error: {exc!r}")
    if isinstance(exc, (json.JSONDecodeError, KeyError, TypeError)):
        return MalformedAnswerError(f"malformed answer body ({type(exc).__name__}: {exc})")
    if isinstance(exc, PermissionError):
        return S2Error("HTTP 403 Forbidden: the API key in SEMANTIC_SCHOLAR_API_KEY is wrong or revoked")
    if isinstance(exc, BadQueryParametersException):
        return S2Error(f"Semantic Scholar rejected the request (HTTP 400): {exc}")
    if isinstance(exc, ObjectNotFoundException):
        return PaperError(f"not found (HTTP 404): {exc}")
    return S2Error(f"unexpected error from the Semantic Scholar client: {exc!r}")


class CheckedRequester(ApiRequester):
    """The package's requester with a rate limit, retries and the `{}` check around every call."""

    def __init__(self, timeout: float, limiter: RateLimiter, policy: RetryPolicy,
                 validate: Callable[[str, dict | None, object], None],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 log: Callable[[str], None] = lambda msg: None) -> None:
        super().__init__(timeout, retry=False)  # the package's retry would wait minutes on 429
        self.validate = validate
        self.limiter = limiter
        self.policy = policy
        self._sleep = sleep
        self._log = log
        self.calls = 0

    async def get_data_async(self, url, parameters, headers, payload=None):
        last: S2Error | None = None
        for attempt in range(1, self.policy.attempts + 1):
            await self.limiter.wait()
            self.calls += 1
            try:
                data = await super().get_data_async(url, parameters, headers or {}, payload)
                if data == {}:
                    raise EmptyAnswerError(
                        "empty answer (HTTP 502/503, or a 200 carrying only an error message)")
                self.validate(url, payload, data)
                return data
            except Exception as exc:  # noqa: BLE001 -- classified right below
                err = classify(exc)
                if not isinstance(err, RetryableError):
                    raise err from exc
                last = err
                if attempt < self.policy.attempts:
                    delay = self.policy.delay(attempt)
                    self._log(f"  {err}; retry {attempt}/{self.policy.attempts - 1} in {delay:g}s")
                    await self._sleep(delay)
        raise S2Error(f"gave up after {self.policy.attempts} tries: {last}. "
                      "Rerun later (the run resumes where it stopped).")


@dataclass
class S2Client:
    api_key: str | None = None
    api_url: str = DEFAULT_API_URL
    timeout: float = 30.0
    limiter: RateLimiter = field(default_factory=RateLimiter)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    log: Callable[[str], None] = lambda msg: None
    references_page: int = REFERENCES_PAGE

    def __post_init__(self) -> None:
        self.requester = CheckedRequester(
            self.timeout, self.limiter, self.policy, validate_answer, self.sleep, self.log)
        self.headers = {"x-api-key": self.api_key} if self.api_key else {}

    @property
    def base(self) -> str:
        return self.api_url.rstrip("/") + GRAPH_PATH

    async def fetch_batch(self, ids: list[str]) -> dict[str, S2Paper | None]:
        """One batch call: {queried id: the package's Paper, or None when S2 does not know it}.

        Answers are matched to queries by id (paperId or the externalIds), never by position alone: an
        answer that matches no query is dropped (and logged) rather than given to the wrong paper.
        """
        if not 1 <= len(ids) <= BATCH_LIMIT:
            raise ValueError(f"a batch holds 1 to {BATCH_LIMIT} ids, got {len(ids)}")
        data = await self.requester.get_data_async(
            f"{self.base}/paper/batch", "fields=" + ",".join(BATCH_FIELDS), self.headers, {"ids": ids})
        out: dict[str, S2Paper | None] = {q: None for q in ids}
        wanted = {_query_key(q): q for q in ids}
        for i, item in enumerate(data):
            if item is None:
                continue
            keys = answer_keys(item)
            q = ids[i] if _query_key(ids[i]) in keys else next(
                (wanted[k] for k in keys if k in wanted and out[wanted[k]] is None), None)
            if q is None:
                self.log(f"  batch answer {i} ({item.get('paperId')}) matches none of the queried ids; ignored")
                continue
            out[q] = S2Paper(item)
        return out

    async def fetch_references(self, s2_id: str, expected: int | None = None) -> list[S2Paper]:
        """Every reference of one paper (all pages), as the package's `Paper` objects.

        Pages follow the API's `next` offset (a page may be shorter than the requested size) until the
        API says done (no `next`), `expected` references (the paper's referenceCount) have been seen,
        a page comes back empty, or MAX_REFERENCE_PAGES pages were read. Entries whose `citedPaper` is
        null are skipped.
        """
        if not S2_ID_RE.match(s2_id):
            raise ValueError(f"not a Semantic Scholar paper id: {s2_id!r}")
        # Not the package's pager: it stops at the first page shorter than the requested size and
        # forgets the API key header.
        url = f"{self.base}/paper/{s2_id}/references"
        fields = ",".join(REFERENCE_FIELDS)
        out: list[S2Paper] = []
        offset = seen = 0
        for _ in range(MAX_REFERENCE_PAGES):
            limit = min(self.references_page, MAX_OFFSET - offset)
            if limit <= 0:
                break
            page = await self.requester.get_data_async(
                url, f"fields={fields}&offset={offset}&limit={limit}", self.headers)
            items = page["data"]
            seen += len(items)
            for item in items:
                if item.get("citedPaper") is not None:
                    ref = S2Reference(item)
                    if ref.paper is not None:
                        out.append(ref.paper)
            nxt = page.get("next")
            if not items or nxt is None or nxt <= offset or (expected is not None and seen >= expected):
                break
            offset = nxt
        return out


MAX_REFERENCE_PAGES = 50   # a cap on the pages read for one paper (50 x 1000 > any real reference list)
MAX_OFFSET = 10000         # the API serves offset + limit <= 10000


def _query_key(q: str) -> str:
    prefix, sep, value = q.partition(":")
    if not sep:
        return q.lower()                     # a 40-hex S2 paper id
    return f"{prefix.upper()}:{value.lower()}"


def answer_keys(item: dict) -> set[str]:
    """The query ids under which a batch answer may have been requested."""
    keys = {str(item.get("paperId") or "").lower()}
    ext = item.get("externalIds") or {}
    for api_key, prefix in (("ArXiv", "ARXIV"), ("DOI", "DOI"), ("ACL", "ACL"), ("CorpusId", "CORPUSID")):
        if ext.get(api_key) is not None:
            keys.add(f"{prefix}:{str(ext[api_key]).lower()}")
    return keys


def validate_answer(url: str, payload: dict | None, data) -> None:
    """Check an answer's shape before the package parses it (called inside the retry loop)."""
    if url.endswith("/paper/batch"):
        check_batch(data, len(payload["ids"]))
    elif url.endswith("/references"):
        check_references_page(data)


def check_batch(data, expected: int) -> None:
    if not isinstance(data, list):
        raise MalformedAnswerError(f"batch answer is a {type(data).__name__}, expected a list")
    if len(data) != expected:
        raise MalformedAnswerError(f"batch answer has {len(data)} entries for {expected} ids")
    for i, item in enumerate(data):
        if item is None:
            continue
        if not isinstance(item, dict) or not isinstance(item.get("paperId"), str) \
                or not S2_ID_RE.match(item["paperId"]):
            raise MalformedAnswerError(f"batch entry {i} has no valid paperId: {str(item)[:120]}")
        for key in ("citationCount", "influentialCitationCount", "referenceCount"):
            v = item.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise MalformedAnswerError(f"batch entry {i}: {key} is {v!r}, expected a count")
        if item.get("externalIds") is not None and not isinstance(item["externalIds"], dict):
            raise MalformedAnswerError(f"batch entry {i}: externalIds is not an object")


def check_references_page(page) -> None:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise MalformedAnswerError("references page has no 'data' list")
    for key in ("offset", "next"):
        if key in page and (not isinstance(page[key], int) or isinstance(page[key], bool)):
            raise MalformedAnswerError(f"references page: {key!r} is {page[key]!r}, expected an integer")
    for item in page["data"]:
        if not isinstance(item, dict) or "citedPaper" not in item:
            raise MalformedAnswerError(f"reference without a citedPaper object: {str(item)[:120]}")
        cited = item["citedPaper"]
        if cited is None:
            continue  # S2 sends `citedPaper: null` for references it cannot show: skipped, not an error
        if not isinstance(cited, dict):
            raise MalformedAnswerError(f"reference without a citedPaper object: {str(item)[:120]}")
        pid = cited.get("paperId")
        if pid is not None and (not isinstance(pid, str) or not S2_ID_RE.match(pid)):
            raise MalformedAnswerError(f"reference with an invalid paperId {pid!r}")
        if cited.get("externalIds") is not None and not isinstance(cited["externalIds"], dict):
            raise MalformedAnswerError("reference whose externalIds is not an object")

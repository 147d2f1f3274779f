"""A careful client for the Semantic Scholar Graph API, built on the `semanticscholar` package.

The package does the HTTP work (httpx) and parses answers into its `Paper`/`Reference` objects, but on
its own it is not safe for unattended runs: it answers `{}` for 502/503 and for a 200 whose body is only
`{"error": ...}`, its built-in retry waits up to minutes and only covers 429, it raises bare
`KeyError`/`JSONDecodeError` on malformed bodies, and its reference pager would loop forever on a
page that silently came back empty. This module therefore:

* disables the package's own retry and wraps each HTTP call (`CheckedRequester`) with a client-side
  rate limit, bounded retries with exponential backoff on 429, 5xx, timeouts, transport errors and
  malformed bodies, and a check that turns the silent `{}` into an error;
* validates the shape of every answer before the package parses it (`fetch_batch`, `fetch_references`).
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
from semanticscholar.PaginatedResults import PaginatedResults
from semanticscholar.Paper import Paper as S2Paper
from semanticscholar.Reference import Reference as S2Reference
from semanticscholar.SemanticScholarException import (
    BadQueryParametersException,
    NoMorePagesException,
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
        return S2Error(f"not found (HTTP 404): {exc}")
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

    async def fetch_batch(self, ids: list[str]) -> list[S2Paper | None]:
        """One batch call: the answer holds one entry per id, in order, None for unknown ids."""
        if not 1 <= len(ids) <= BATCH_LIMIT:
            raise ValueError(f"a batch holds 1 to {BATCH_LIMIT} ids, got {len(ids)}")
        data = await self.requester.get_data_async(
            f"{self.base}/paper/batch", "fields=" + ",".join(BATCH_FIELDS), self.headers, {"ids": ids})
        return [None if item is None else S2Paper(item) for item in data]

    async def fetch_references(self, s2_id: str) -> list[S2Paper]:
        """Every reference of one paper (all pages), as the package's `Paper` objects."""
        if not S2_ID_RE.match(s2_id):
            raise ValueError(f"not a Semantic Scholar paper id: {s2_id!r}")
        # The package's own get_paper_references() forgets the API key header; build the pager directly.
        pager = await PaginatedResults.create(
            requester=self.requester, data_type=S2Reference, url=f"{self.base}/paper/{s2_id}/references",
            fields=list(REFERENCE_FIELDS), limit=self.references_page, headers=self.headers)
        try:
            while True:
                await pager.async_next_page()
        except NoMorePagesException:
            pass
        return [ref.paper for ref in pager.items if ref.paper is not None]


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
        cited = item.get("citedPaper") if isinstance(item, dict) else None
        if not isinstance(cited, dict):
            raise MalformedAnswerError(f"reference without a citedPaper object: {str(item)[:120]}")
        pid = cited.get("paperId")
        if pid is not None and (not isinstance(pid, str) or not S2_ID_RE.match(pid)):
            raise MalformedAnswerError(f"reference with an invalid paperId {pid!r}")
        if cited.get("externalIds") is not None and not isinstance(cited["externalIds"], dict):
            raise MalformedAnswerError("reference whose externalIds is not an object")

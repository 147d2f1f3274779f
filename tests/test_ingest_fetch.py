"""The arXiv fetcher at the HTTP level: real `arxiv.Client` parsing of Atom feeds served by `responses`."""
from __future__ import annotations

import re

import pytest
import requests
import responses

from lvlm_atlas.ingest.config import ClientSettings
from lvlm_atlas.ingest.fetch import ArxivQueryError, ArxivSource, FetchError
from tests.arxiv_atom import API, Entry, FakeArxiv, error_feed, feed

API_RE = re.compile(re.escape(API) + r".*")


def make_source(sleeps: list[float], **overrides) -> ArxivSource:
    settings = ClientSettings(**{"page_size": 2, "delay_seconds": 0.0, "timeout_seconds": 5, "max_retries": 3,
                                 "backoff_seconds": 1.0, "backoff_max_seconds": 8.0, "max_results_per_query": 100,
                                 **overrides})
    return ArxivSource(settings, sleep=sleeps.append)


def entries(n: int) -> list[Entry]:
    return [Entry(id=f"2611.{i:05d}v{1 + i % 3}", title=f"Paper number {i}", abstract=f"Abstract {i}.") for i in range(n)]


def serve(fake: FakeArxiv) -> None:
    responses.add_callback(responses.GET, API_RE, callback=fake)


@responses.activate
def test_paginates_and_strips_versions():
    items = entries(5)
    fake = FakeArxiv(lambda q: items)
    serve(fake)
    sleeps: list[float] = []
    records = make_source(sleeps).search("cat:cs.CV")
    assert [r.arxiv_id for r in records] == [f"2611.{i:05d}" for i in range(5)]
    assert [r.version for r in records] == [1, 2, 3, 1, 2]
    assert [c["start"] for c in fake.calls] == ["0", "2", "4"]
    assert all(c["max_results"] == "2" and c["sortBy"] == "submittedDate" for c in fake.calls)
    assert sleeps == []


@responses.activate
def test_old_style_ids_and_metadata_are_kept():
    e = Entry(id="cs/0601001v2", title="An old\n   title  with breaks", abstract="Code at https://github.com/someone/repo.",
              comment="12 pages; project page https://someone.github.io/proj/", journal_ref="J. Example 1 (2006) 1-12",
              doi="10.1234/EXAMPLE.5", published="2006-01-02T10:00:00Z", updated="2006-02-03T10:00:00Z",
              authors=["Ana María Núñez", "B. Smith"])
    serve(FakeArxiv(lambda q: [e]))
    (rec,) = make_source([]).search("q")
    assert (rec.arxiv_id, rec.version) == ("cs/0601001", 2)
    assert rec.title == "An old title with breaks"
    assert rec.authors == ("Ana María Núñez", "B. Smith")
    assert rec.published.isoformat() == "2006-01-02" and rec.updated.isoformat() == "2006-02-03"
    assert rec.doi == "10.1234/EXAMPLE.5" and rec.journal_ref == "J. Example 1 (2006) 1-12"
    assert rec.code_urls == ["https://github.com/someone/repo"]
    assert rec.project_urls == ["https://someone.github.io/proj/"]
    assert rec.categories == ("cs.CV", "cs.CL")


@responses.activate
def test_503_then_success_backs_off_and_honours_retry_after():
    items = entries(3)
    fake = FakeArxiv(lambda q: items, script=[(503, {"Retry-After": "6"}, b"Service Unavailable")])
    serve(fake)
    sleeps: list[float] = []
    records = make_source(sleeps).search("q")
    assert len(records) == 3
    assert sleeps == [6.0]              # Retry-After (6 s) wins over the first backoff (1 s)
    assert [c["start"] for c in fake.calls] == ["0", "0", "2"]


@responses.activate
def test_empty_page_in_the_middle_is_retried_from_the_same_offset():
    items = entries(5)
    fake = FakeArxiv(lambda q: items, script=[None, (200, {}, feed([], total=5, start=2))])
    serve(fake)
    sleeps: list[float] = []
    records = make_source(sleeps).search("q")
    assert [r.arxiv_id for r in records] == [f"2611.{i:05d}" for i in range(5)]
    assert [c["start"] for c in fake.calls] == ["0", "2", "2", "4"]
    assert sleeps == [1.0]


@responses.activate
def test_empty_first_page_with_results_announced_is_retried():
    items = entries(2)
    fake = FakeArxiv(lambda q: items, script=[(200, {}, feed([], total=2, start=0))])
    serve(fake)
    assert len(make_source([]).search("q")) == 2


@responses.activate
def test_malformed_feed_and_timeout_are_retried_with_growing_backoff():
    items = entries(2)
    truncated = feed(items)[:-200]
    fake = FakeArxiv(lambda q: items, script=[(200, {}, truncated), requests.exceptions.ReadTimeout("slow"),
                                              (429, {}, b"Too Many Requests")])
    serve(fake)
    sleeps: list[float] = []
    assert len(make_source(sleeps).search("q")) == 2
    assert sleeps == [1.0, 2.0, 4.0]


@responses.activate
def test_gives_up_after_max_retries_with_a_clear_message():
    fake = FakeArxiv(lambda q: entries(2), script=[(503, {}, b"")] * 10)
    serve(fake)
    sleeps: list[float] = []
    with pytest.raises(FetchError, match="giving up.*after 4 failed attempts"):
        make_source(sleeps).search("q")
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(fake.calls) == 4


@responses.activate
@pytest.mark.parametrize("status", [400, 200])
def test_error_feed_is_not_retried_and_says_why(status):
    fake = FakeArxiv(lambda q: [], script=[(status, {}, error_feed("incorrect id format for 1234"))])
    serve(fake)
    with pytest.raises(ArxivQueryError, match="incorrect id format for 1234"):
        make_source([]).by_ids(["1234"])
    assert len(fake.calls) == 1


@responses.activate
def test_every_request_has_a_timeout_and_by_ids_uses_id_list():
    seen = []

    def callback(request):
        seen.append(request.req_kwargs.get("timeout"))
        return 200, {}, feed([Entry(id="2403.06764v3", title="T", abstract="A")])

    responses.add_callback(responses.GET, API_RE, callback=callback)
    (rec,) = make_source([], timeout_seconds=7).by_ids(["2403.06764"])
    assert rec.arxiv_id == "2403.06764" and rec.version == 3
    assert seen == [7]

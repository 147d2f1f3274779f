"""Semantic Scholar enrichment, tested offline at the HTTP level against a scripted local server."""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json

import pytest

from fake_s2 import FakeS2, Reply, batch_answering, ref_item, ref_page, running, s2_paper
from graph_catalogs import catalog, paper
from lvlm_atlas.enrich.client import RateLimiter, RetryPolicy, S2Client, S2Error
from lvlm_atlas.enrich.runner import enrich
from lvlm_atlas.enrich.store import load_store

BATCH = "/graph/v1/paper/batch"


def sid(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def refs_path(name: str) -> str:
    return f"/graph/v1/paper/{sid(name)}/references"


class Env:
    """tmp paths + a client wired to the fake server, recording backoff sleeps instead of sleeping."""

    def __init__(self, tmp_path, fake: FakeS2, *, attempts: int = 3, timeout: float = 5.0,
                 page: int = 1000, api_key: str | None = None):
        self.tmp = tmp_path
        self.store = tmp_path / "enrichment" / "semantic_scholar.json"
        self.state = tmp_path / "state" / "run.json"
        self.suggestions = tmp_path / "enrichment" / "suggestions.md"
        self.sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        self.client = S2Client(api_key=api_key, api_url=fake.url, timeout=timeout,
                               limiter=RateLimiter(min_interval=0.0),
                               policy=RetryPolicy(attempts=attempts, base_delay=1.0, max_delay=8.0),
                               sleep=fake_sleep, references_page=page)

    def run(self, cat, today=dt.date(2026, 11, 21), **kw):
        return asyncio.run(enrich(cat, self.client, store_path=self.store, state_path=self.state,
                                  suggestions_path=self.suggestions, today=today, log=lambda m: None, **kw))


CAT = catalog(
    paper("fastv", arxiv="2403.06764"),
    paper("llava", arxiv="2304.08485", status="published"),
    paper("ghost", arxiv="2401.99999"),
    paper("offline-only", year=2024),   # no identifier at all: cannot be looked up
)


def standard_routes(fake: FakeS2) -> FakeS2:
    fake.on("POST", BATCH, batch_answering({  # 2401.99999 (ghost) is unknown to S2: null
        "ARXIV:2403.06764": s2_paper(sid("fastv"), arxiv="2403.06764", citations=250, influential=40,
                                     references=3, venue="European Conference on Computer Vision"),
        "ARXIV:2304.08485": s2_paper(sid("llava"), arxiv="2304.08485", citations=5000, influential=900,
                                     references=1),
    }))
    fake.on("GET", refs_path("fastv"), Reply(200, ref_page([
        ref_item(sid("llava"), ArXiv="2304.08485"),
        ref_item(sid("vit"), ArXiv="2010.11929", DBLP="x"),
        ref_item(None),  # S2 could not resolve this reference
    ], 0, None)))
    fake.on("GET", refs_path("llava"), Reply(200, ref_page([ref_item(sid("clip"), DOI="10.5555/Clip.1")], 0, None)))
    return fake


def test_batch_with_null_for_unknown_ids_and_references(tmp_path):
    with running(standard_routes(FakeS2())) as fake:
        env = Env(tmp_path, fake, api_key="sekret")
        out = env.run(CAT)
    batch = fake.seen(BATCH)
    assert len(batch) == 1
    assert batch[0].body == {"ids": ["ARXIV:2304.08485", "ARXIV:2401.99999", "ARXIV:2403.06764"]}
    assert "citationCount" in batch[0].query["fields"][0]
    assert all(r.headers.get("x-api-key") == "sekret" for r in fake.requests)  # references too
    assert out.enriched == ["fastv", "llava"] and out.not_found == ["ghost"]
    assert out.no_identifier == ["offline-only"]
    store = load_store(env.store)
    rec = store.papers["fastv"]
    assert rec["s2_id"] == sid("fastv") and rec["query"] == "ARXIV:2403.06764"
    assert (rec["citation_count"], rec["influential_citation_count"], rec["reference_count"]) == (250, 40, 3)
    assert rec["references"] == {"catalog": ["llava"], "external": ["ARXIV:2010.11929"]}
    assert rec["fetched"] == "2026-11-21"
    assert store.papers["llava"]["references"] == {"catalog": [], "external": ["DOI:10.5555/clip.1"]}
    assert store.not_found == {"ghost": "ARXIV:2401.99999"}
    # fastv is a preprint in the catalog but S2 reports a conference: a suggestion, never an edit
    assert out.suggestions == {"fastv": [
        "status is preprint, but Semantic Scholar lists venue 'European Conference on Computer Vision' (2024): "
        "if it was published, set status: published and venue"]}
    assert "European Conference on Computer Vision" in env.suggestions.read_text()
    assert not env.state.exists()


def test_paginated_references_follow_next(tmp_path):
    cat = catalog(paper("fastv", arxiv="2403.06764"), paper("a", arxiv="2301.00001"), paper("b", arxiv="2301.00002"))
    fake = FakeS2()
    fake.on("POST", BATCH, batch_answering({"ARXIV:2403.06764": s2_paper(sid("fastv"), arxiv="2403.06764", references=5)}))

    def pages(seen):
        offset = int(seen.query["offset"][0])
        assert seen.query["limit"] == ["2"]
        items = [ref_item(sid("a"), ArXiv="2301.00001"), ref_item(sid("x1")),
                 ref_item(sid("b"), ArXiv="2301.00002"), ref_item(sid("x2"), DOI="10.1/ABC"),
                 ref_item(sid("x3"), ArXiv="2001.00003")]
        chunk = items[offset:offset + 2]
        return Reply(200, ref_page(chunk, offset, offset + 2 if offset + 2 < len(items) else None))

    fake.on("GET", refs_path("fastv"), pages)
    with running(fake):
        env = Env(tmp_path, fake, page=2)
        env.run(cat)
    offsets = [r.query["offset"][0] for r in fake.seen("/references")]
    assert offsets == ["0", "2", "4"]
    refs = load_store(env.store).papers["fastv"]["references"]
    assert refs == {"catalog": ["a", "b"], "external": ["ARXIV:2001.00003", "DOI:10.1/abc", f"S2:{sid('x1')}"]}


def test_429_then_success_backs_off_exponentially(tmp_path):
    fake = standard_routes(FakeS2())
    fake.routes[("POST", BATCH)][:0] = [Reply(429, {"message": "Too Many Requests"}),
                                         Reply(429, {"message": "Too Many Requests"})]
    with running(fake):
        env = Env(tmp_path, fake, attempts=4)
        out = env.run(CAT)
    assert len(fake.seen(BATCH)) == 3
    assert env.sleeps == [1.0, 2.0]
    assert out.enriched == ["fastv", "llava"]


def test_500_is_retried_and_persistent_500_fails_cleanly(tmp_path):
    fake = standard_routes(FakeS2())
    fake.routes[("POST", BATCH)][:0] = [Reply(500, {"message": "Internal Server Error"})]
    with running(fake):
        env = Env(tmp_path, fake)
        assert env.run(CAT).enriched == ["fastv", "llava"]

    broken = FakeS2().on("POST", BATCH, Reply(500, {"message": "Internal Server Error"}))
    with running(broken):
        env2 = Env(tmp_path / "b", broken, attempts=3)
        with pytest.raises(S2Error, match="gave up after 3 tries.*server error"):
            env2.run(CAT)
    assert len(broken.seen(BATCH)) == 3
    assert not env2.store.exists()  # nothing half-written


def test_502_which_the_package_turns_into_an_empty_dict_is_an_error(tmp_path):
    fake = FakeS2().on("POST", BATCH, Reply(502, "<html>Bad Gateway</html>"))
    with running(fake):
        env = Env(tmp_path, fake, attempts=2)
        with pytest.raises(S2Error, match="empty answer"):
            env.run(CAT)
    # 200 with only an error message is the same silent {} in the package
    fake = standard_routes(FakeS2())
    fake.routes[("POST", BATCH)][:0] = [Reply(200, {"error": "Please try again later"})]
    with running(fake):
        env = Env(tmp_path / "b", fake)
        assert env.run(CAT).enriched == ["fastv", "llava"]
    assert env.sleeps == [1.0]


def test_timeout_is_retried(tmp_path):
    fake = standard_routes(FakeS2())
    fake.routes[("GET", refs_path("llava"))][:0] = [Reply(200, ref_page([], 0, None), delay=1.0)]
    with running(fake):
        env = Env(tmp_path, fake, timeout=0.3)
        out = env.run(CAT)
    assert len(fake.seen(refs_path("llava"))) == 2
    assert out.enriched == ["fastv", "llava"]
    assert load_store(env.store).papers["llava"]["references"]["external"] == ["DOI:10.5555/clip.1"]


@pytest.mark.parametrize("bad", [
    Reply(200, "<html>not json</html>"),                      # body is not JSON
    Reply(200, [None]),                                       # wrong number of entries for 3 ids
    Reply(200, [{"paperId": "nope"}, None, None]),            # invalid paper id
    Reply(200, [None, None, {"paperId": "a" * 40, "citationCount": "many"}]),
    Reply(500, "upstream exploded"),                          # 500 whose body is not JSON
])
def test_malformed_bodies_are_retried_then_reported(tmp_path, bad):
    fake = standard_routes(FakeS2())
    fake.routes[("POST", BATCH)][:0] = [bad]
    with running(fake):
        env = Env(tmp_path, fake)
        assert env.run(CAT).enriched == ["fastv", "llava"]
    assert len(fake.seen(BATCH)) == 2

    always_bad = FakeS2().on("POST", BATCH, bad)
    with running(always_bad):
        env = Env(tmp_path / "b", always_bad, attempts=2)
        with pytest.raises(S2Error, match="gave up after 2 tries"):
            env.run(CAT)


def test_malformed_references_page_is_retried(tmp_path):
    fake = standard_routes(FakeS2())
    fake.routes[("GET", refs_path("fastv"))][:0] = [Reply(200, {"offset": 0, "data": [{"citedPaper": "x"}]})]
    with running(fake):
        env = Env(tmp_path, fake)
        env.run(CAT)
    assert len(fake.seen(refs_path("fastv"))) == 2
    assert load_store(env.store).papers["fastv"]["references"]["catalog"] == ["llava"]


def test_client_errors_are_not_retried(tmp_path):
    fake = FakeS2().on("POST", BATCH, Reply(400, {"error": "Unrecognized or unsupported fields: [bogus]"}))
    with running(fake):
        env = Env(tmp_path, fake)
        with pytest.raises(S2Error, match="HTTP 400.*unsupported fields"):
            env.run(CAT)
    assert len(fake.seen(BATCH)) == 1 and env.sleeps == []


def test_crash_mid_run_leaves_valid_data_and_rerun_finishes(tmp_path):
    cat = catalog(*(paper(f"p{i}", arxiv=f"2401.0000{i}") for i in range(1, 5)))
    answers = [s2_paper(sid(f"p{i}"), arxiv=f"2401.0000{i}", references=1, citations=i) for i in range(1, 5)]

    def healthy() -> FakeS2:
        fake = FakeS2().on("POST", BATCH, Reply(200, answers))
        for i in range(1, 5):
            prev = max(i - 1, 1)
            fake.on("GET", refs_path(f"p{i}"), Reply(200, ref_page([ref_item(sid(f"p{prev}"), ArXiv=f"2401.0000{prev}")], 0, None)))
        return fake

    # clean reference run in its own folder
    with running(healthy()) as fake:
        clean = Env(tmp_path / "clean", fake)
        clean.run(cat)

    # the third paper's references fail for good: the run stops there
    crashing = healthy()
    crashing.routes[("GET", refs_path("p3"))] = [Reply(403, {"message": "Forbidden"})]
    with running(crashing):
        env = Env(tmp_path / "crash", crashing)
        with pytest.raises(S2Error, match="403"):
            env.run(cat)
    mid = load_store(env.store)                 # still valid, complete records only
    assert sorted(mid.papers) == ["p1", "p2"]
    assert env.state.exists()

    # rerun (on a later day) resumes: no new batch call, only the missing reference lists
    with running(healthy()) as fake:
        env.client.api_url = fake.url
        env.client.__post_init__()
        out = env.run(cat, today=dt.date(2026, 11, 22))
    assert out.resumed
    assert fake.seen(BATCH) == []
    assert [r.path for r in fake.requests] == [refs_path("p3"), refs_path("p4")]
    assert env.store.read_bytes() == clean.store.read_bytes()
    assert not env.state.exists()


def test_rerun_with_same_answers_is_byte_identical_and_skips_unchanged_references(tmp_path):
    with running(standard_routes(FakeS2())) as fake:
        env = Env(tmp_path, fake)
        env.run(CAT)
        first = env.store.read_bytes()
        first_suggestions = env.suggestions.read_bytes()
        out = env.run(CAT, today=dt.date(2027, 1, 1))
    assert env.store.read_bytes() == first
    assert env.suggestions.read_bytes() == first_suggestions
    assert out.reference_calls == 0  # reference counts unchanged: stored lists reused
    assert json.loads(first)["papers"]["fastv"]["fetched"] == "2026-11-21"


def test_changed_counts_update_record_and_date(tmp_path):
    with running(standard_routes(FakeS2())) as fake:
        env = Env(tmp_path, fake)
        env.run(CAT)
    changed = standard_routes(FakeS2())
    changed.routes[("POST", BATCH)] = [batch_answering({
        "ARXIV:2403.06764": s2_paper(sid("fastv"), arxiv="2403.06764", citations=260, influential=40,
                                     references=3, venue="European Conference on Computer Vision"),
        "ARXIV:2304.08485": s2_paper(sid("llava"), arxiv="2304.08485", citations=5000, influential=900,
                                     references=1)})]
    with running(changed):
        env.client.api_url = changed.url
        env.client.__post_init__()
        env.run(CAT, today=dt.date(2026, 11, 28))
    rec = load_store(env.store).papers["fastv"]
    assert (rec["citation_count"], rec["fetched"]) == (260, "2026-11-28")
    assert load_store(env.store).papers["llava"]["fetched"] == "2026-11-21"


def test_only_limits_the_run_and_keeps_other_records(tmp_path):
    with running(standard_routes(FakeS2())) as fake:
        env = Env(tmp_path, fake)
        env.run(CAT)
    fake2 = FakeS2().on("POST", BATCH, Reply(200, [s2_paper(sid("llava"), arxiv="2304.08485", citations=5001, references=1)]))
    with running(fake2):
        env.client.api_url = fake2.url
        env.client.__post_init__()
        env.run(CAT, only=["llava"])
        with pytest.raises(ValueError, match="not in the catalog: nope"):
            env.run(CAT, only=["nope"])
    assert fake2.seen(BATCH)[0].body == {"ids": ["ARXIV:2304.08485"]}
    store = load_store(env.store)
    assert store.papers["llava"]["citation_count"] == 5001
    assert store.papers["fastv"]["citation_count"] == 250


def test_rate_limiter_spaces_requests():
    now = [100.0]
    slept: list[float] = []

    async def sleep(s):
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(min_interval=1.0, clock=lambda: now[0], sleep=sleep)

    async def go():
        await limiter.wait()          # first call: immediate
        now[0] += 0.25
        await limiter.wait()          # 0.75 s left to wait
        now[0] += 3.0
        await limiter.wait()          # long gap: no wait
    asyncio.run(go())
    assert slept == [0.75]


def test_corrupt_store_is_reported_not_overwritten(tmp_path):
    store = tmp_path / "enrichment" / "semantic_scholar.json"
    store.parent.mkdir()
    store.write_text('{"schema": 1, "papers": {"x": {"s2_id": "bad"}}, "not_found": {}}')
    with running(standard_routes(FakeS2())) as fake:
        env = Env(tmp_path, fake)
        from lvlm_atlas.enrich.store import StoreError
        with pytest.raises(StoreError, match="papers.x.s2_id"):
            env.run(CAT)
    assert "bad" in store.read_text()

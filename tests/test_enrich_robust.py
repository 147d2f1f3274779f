"""Issue 17, enrichment: real-world Semantic Scholar answers never break a run (cases 9 and 10).

Same offline set-up as tests/test_enrich.py: a scripted local HTTP server, the real `semanticscholar`
client over httpx."""
from __future__ import annotations

import functools

from fake_s2 import FakeS2, Reply, batch_answering, ref_item, ref_page, running, s2_paper
from graph_catalogs import catalog, paper
from lvlm_atlas.enrich.store import load_store
from tests.test_enrich import BATCH, Env, refs_path, sid


def one_paper_batch(references: int):
    return batch_answering({"ARXIV:2403.06764": s2_paper(sid("fastv"), arxiv="2403.06764", references=references)})


CAT1 = catalog(paper("fastv", arxiv="2403.06764"))


# 9. the reference pager -----------------------------------------------------------------------------

def test_short_pages_are_followed_until_the_count_is_reached(tmp_path):
    # 67 references; the API answers 40 on the first page although 1000 were asked for, then the rest
    items = [ref_item(sid(f"r{i}"), ArXiv=f"2001.{i:05d}") for i in range(67)]

    def pages(seen):
        offset = int(seen.query["offset"][0])
        if offset == 0:
            return Reply(200, ref_page(items[:40], 0, 40))
        return Reply(200, ref_page(items[offset:], offset, None))

    fake = FakeS2().on("POST", BATCH, one_paper_batch(67)).on("GET", refs_path("fastv"), pages)
    with running(fake):
        env = Env(tmp_path, fake)
        env.run(CAT1)
    assert [r.query["offset"][0] for r in fake.seen("/references")] == ["0", "40"]
    assert len(load_store(env.store).papers["fastv"]["references"]["external"]) == 67


def test_empty_page_that_points_further_stops_paging(tmp_path):
    items = [ref_item(sid(f"r{i}"), ArXiv=f"2001.{i:05d}") for i in range(2)]

    def pages(seen):
        offset = int(seen.query["offset"][0])
        if offset == 0:
            return Reply(200, ref_page(items, 0, 2))
        return Reply(200, ref_page([], offset, offset + 2))   # empty, yet "next" says there is more

    fake = FakeS2().on("POST", BATCH, one_paper_batch(50)).on("GET", refs_path("fastv"), pages)
    with running(fake):
        env = Env(tmp_path, fake, page=2)
        env.run(CAT1)
    assert len(fake.seen("/references")) == 2
    assert len(load_store(env.store).papers["fastv"]["references"]["external"]) == 2


def test_paging_stops_when_the_count_is_reached_even_if_next_is_given(tmp_path):
    items = [ref_item(sid(f"r{i}"), ArXiv=f"2001.{i:05d}") for i in range(3)]

    def pages(seen):
        offset = int(seen.query["offset"][0])
        return Reply(200, ref_page(items[offset:offset + 2], offset, offset + 2))   # never says done

    fake = FakeS2().on("POST", BATCH, one_paper_batch(3)).on("GET", refs_path("fastv"), pages)
    with running(fake):
        env = Env(tmp_path, fake, page=2)
        env.run(CAT1)
    assert [r.query["offset"][0] for r in fake.seen("/references")] == ["0", "2"]


def test_batch_answers_are_matched_by_id_not_position(tmp_path):
    cat = catalog(paper("fastv", arxiv="2403.06764"), paper("llava", arxiv="2304.08485"))
    answers = {"ARXIV:2403.06764": s2_paper(sid("fastv"), arxiv="2403.06764", citations=250),
               "ARXIV:2304.08485": s2_paper(sid("llava"), arxiv="2304.08485", citations=5000)}

    def shuffled(seen):   # the right answers, in the wrong order
        return Reply(200, [answers[i] for i in reversed(seen.body["ids"])])

    fake = FakeS2().on("POST", BATCH, shuffled)
    fake.on("GET", refs_path("fastv"), Reply(200, ref_page([], 0, None)))
    fake.on("GET", refs_path("llava"), Reply(200, ref_page([], 0, None)))
    with running(fake):
        env = Env(tmp_path, fake)
        env.run(cat)
    papers = load_store(env.store).papers
    assert papers["fastv"]["s2_id"] == sid("fastv") and papers["fastv"]["citation_count"] == 250
    assert papers["llava"]["s2_id"] == sid("llava") and papers["llava"]["citation_count"] == 5000


# 10. one paper's failure, null entries -----------------------------------------------------------------

CAT3 = catalog(paper("a", arxiv="2401.00001"), paper("b", arxiv="2401.00002"), paper("c", arxiv="2401.00003"))


def three(fake: FakeS2, b_fails: bool) -> FakeS2:
    fake.on("POST", BATCH, batch_answering({f"ARXIV:2401.0000{i}": s2_paper(sid(p), arxiv=f"2401.0000{i}", references=1)
                                            for i, p in enumerate("abc", 1)}))
    for p in "ac":
        fake.on("GET", refs_path(p), Reply(200, ref_page([ref_item(sid("x"), ArXiv="2001.00001")], 0, None)))
    fake.on("GET", refs_path("b"), Reply(404, {"error": "Paper with id %s not found" % sid("b")}) if b_fails
            else Reply(200, ref_page([ref_item(sid("y"), ArXiv="2001.00002")], 0, None)))
    return fake


def test_404_on_one_papers_references_is_recorded_and_skipped(tmp_path):
    with running(three(FakeS2(), b_fails=True)) as fake:
        env = Env(tmp_path, fake)
        out = env.run(CAT3)
    assert out.enriched == ["a", "c"] and list(out.failed) == ["b"] and "404" in out.failed["b"]
    store = load_store(env.store)
    assert sorted(store.papers) == ["a", "c"] and "404" in store.failed["b"]
    assert not env.state.exists()
    # the next run tries the failed paper after the others, and clears the failure once it works
    with running(three(FakeS2(), b_fails=False)) as fake:
        env.client.api_url = fake.url
        env.client.__post_init__()
        out = env.run(CAT3, today=__import__("datetime").date(2026, 11, 22), refresh_references=True)
    assert [r.path for r in fake.requests if "/references" in r.path] == [refs_path("a"), refs_path("c"), refs_path("b")]
    assert sorted(out.enriched) == ["a", "b", "c"] and out.failed == {}
    assert load_store(env.store).failed == {}


def test_null_cited_paper_entries_are_tolerated(tmp_path):
    fake = FakeS2().on("POST", BATCH, one_paper_batch(3))
    fake.on("GET", refs_path("fastv"), Reply(200, ref_page(
        [ref_item(sid("r1"), ArXiv="2001.00001"), {"citedPaper": None}, ref_item(sid("r2"), DOI="10.1/x")], 0, None)))
    with running(fake):
        env = Env(tmp_path, fake)
        out = env.run(CAT1)
    assert out.enriched == ["fastv"]
    assert len(fake.seen("/references")) == 1                      # not retried as malformed
    assert load_store(env.store).papers["fastv"]["references"]["external"] == ["ARXIV:2001.00001", "DOI:10.1/x"]


def test_cli_enrich_finishes_when_one_papers_references_404(tmp_path, monkeypatch, capsys):
    import lvlm_atlas.cli.enrich as cli_enrich
    from lvlm_atlas.cli import main
    from lvlm_atlas.enrich.runner import enrich

    monkeypatch.setattr(cli_enrich, "catalog_or_report", lambda: CAT3)
    import lvlm_atlas.enrich.runner as runner_mod

    monkeypatch.setattr(runner_mod, "enrich", functools.partial(
        enrich, store_path=tmp_path / "s2.json", state_path=tmp_path / "run.json",
        suggestions_path=tmp_path / "suggestions.md"))
    with running(three(FakeS2(), b_fails=True)) as fake:
        code = main(["enrich", "--api-url", fake.url, "--rate", "1000"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "enriched 2 papers" in out
    assert "references not fetched, retried on the next run (1):" in err and "  b: not found (HTTP 404)" in err

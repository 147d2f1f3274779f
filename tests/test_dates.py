"""`atlas dates`: month-only first-version dates filled from arXiv's <published> (version 1), offline
against Atom feeds served at the transport level, so the real `arxiv` client parses them."""
from __future__ import annotations

import dataclasses
import re

import pytest
import responses

from lvlm_atlas.__main__ import main
from lvlm_atlas.catalog.taxonomy import load_taxonomy
from lvlm_atlas.catalog.validate import validate_catalog
from lvlm_atlas.ingest.config import load_config
from lvlm_atlas.ingest.dates import fill_dates, report_markdown, rewrite
from lvlm_atlas.ingest.fetch import ArxivSource
from tests.arxiv_atom import API, Entry, FakeArxiv
from tests.catalog_factory import paper_dict, write_paper

API_RE = re.compile(re.escape(API) + r".*")
ADDED_BEFORE_RULE = "2026-11-20"   # entries added before full dates became mandatory may still have a month


def _paper(i: int, arxiv: str, date: str, **kw) -> dict:
    return paper_dict(i, identifiers={"arxiv": arxiv}, links={"paper": f"https://arxiv.org/abs/{arxiv}"},
                      date=date, added=ADDED_BEFORE_RULE, **kw)


# what arXiv says (version suffixes as the API returns them; <published> is version 1's submission time)
ARXIV = [
    Entry("2403.00001v2", "Paper one", "abstract", published="2024-03-11T17:59:01Z", updated="2024-05-01T10:00:00Z"),
    Entry("2403.00002v1", "Paper two", "abstract", published="2024-02-28T23:10:00Z"),   # submitted before its id's month
    Entry("2403.00004v1", "Paper four", "abstract", published="2023-10-01T09:00:00Z"),  # 5 months before: refused
    Entry("2403.00005v1", "Paper five", "abstract", published="2024-03-06T08:00:00Z"),  # catalog says 03-05
    Entry("2401.00006v3", "Paper six", "abstract", published="2023-12-30T12:00:00Z"),   # across the year boundary
]


@pytest.fixture()
def papers(tmp_path):
    d = tmp_path / "papers"
    write_paper(d, _paper(1, "2403.00001", "2024-03"))
    write_paper(d, _paper(2, "2403.00002", "2024-03"))
    write_paper(d, _paper(3, "2403.00003", "2024-03"))                 # arXiv returns nothing for it
    write_paper(d, _paper(4, "2403.00004", "2024-03"))
    write_paper(d, _paper(5, "2403.00005", "2024-03-05"))              # already a full date
    write_paper(d, _paper(6, "2401.00006", "2024-01"))
    return d


@pytest.fixture()
def source():
    cfg = load_config(taxonomy=load_taxonomy())
    return ArxivSource(dataclasses.replace(cfg.client, delay_seconds=0.0, max_retries=1), sleep=[].append)


def _date_line(path) -> str:
    return next(line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("date:"))


@responses.activate
def test_fills_month_only_dates_and_changes_nothing_else(papers, source):
    fake = FakeArxiv(lambda q: ARXIV)
    responses.add_callback(responses.GET, API_RE, callback=fake)
    before = {p.name: p.read_text(encoding="utf-8") for p in papers.glob("*.yaml")}
    result = fill_dates(source, papers, load_taxonomy(), batch=2)

    assert {c.entry.id: c.new for c in result.filled} == {
        "example-method-1": "2024-03-11", "example-method-2": "2024-02-28", "example-method-6": "2023-12-30"}
    assert [e.id for e in result.not_found] == ["example-method-3"]
    assert [e.id for e, _ in result.refused] == ["example-method-4"]
    assert "not within 3 months before" in result.refused[0][1]
    assert result.disagree == [] and result.error is None
    # the ids went out as id_list queries of at most `batch` ids; the full date (paper 5) was not asked for
    asked = [c["id_list"].split(",") for c in fake.calls]
    assert all(len(ids) <= 2 for ids in asked) and "2403.00005" not in sum(asked, [])
    for p in papers.glob("*.yaml"):
        old, new = before[p.name].splitlines(), p.read_text(encoding="utf-8").splitlines()
        changed = [(a, b) for a, b in zip(old, new) if a != b]
        if p.stem in ("example-method-1", "example-method-2", "example-method-6"):
            assert len(old) == len(new) and len(changed) == 1 and changed[0][1].startswith('date: "')
        else:
            assert changed == []
    assert _date_line(papers / "example-method-6.yaml") == 'date: "2023-12-30"'
    assert not list(papers.glob(".*.tmp"))                      # atomic writes leave nothing behind
    assert validate_catalog(papers, load_taxonomy()).problems == []


@responses.activate
def test_rerun_is_idempotent_and_check_lists_disagreeing_full_dates(papers, source):
    responses.add_callback(responses.GET, API_RE, callback=FakeArxiv(lambda q: ARXIV))
    tax = load_taxonomy()
    fill_dates(source, papers, tax)
    snapshot = {p.name: p.read_text(encoding="utf-8") for p in papers.glob("*.yaml")}
    again = fill_dates(source, papers, tax)
    assert again.filled == [] and {p.name: p.read_text(encoding="utf-8") for p in papers.glob("*.yaml")} == snapshot
    checked = fill_dates(source, papers, tax, check=True)
    assert [(c.entry.id, c.entry.date, c.new) for c in checked.disagree] == [("example-method-5", "2024-03-05", "2024-03-06")]
    assert checked.confirmed == 3                                # 1, 2 and 6 now agree with arXiv
    assert _date_line(papers / "example-method-5.yaml") == "date: '2024-03-05'"   # never changed automatically


@responses.activate
def test_dry_run_writes_nothing(papers, source):
    responses.add_callback(responses.GET, API_RE, callback=FakeArxiv(lambda q: ARXIV))
    before = {p.name: p.read_text(encoding="utf-8") for p in papers.glob("*.yaml")}
    result = fill_dates(source, papers, load_taxonomy(), dry_run=True)
    assert len(result.filled) == 3
    assert {p.name: p.read_text(encoding="utf-8") for p in papers.glob("*.yaml")} == before
    assert "would fill 3 month-only date(s)" in report_markdown(result, dry_run=True)


@responses.activate
def test_one_unreadable_entry_does_not_stop_the_run(papers, source):
    broken = dataclasses.replace(ARXIV[0], published="not a date")
    responses.add_callback(responses.GET, API_RE, callback=FakeArxiv(lambda q: [broken, *ARXIV[1:]]))
    result = fill_dates(source, papers, load_taxonomy())
    assert "example-method-1" in [e.id for e in result.not_found]
    assert {c.entry.id for c in result.filled} == {"example-method-2", "example-method-6"}
    assert source.bad_entries and "2403.00001" in source.bad_entries[0].ident


@responses.activate
def test_arxiv_failing_part_way_keeps_what_was_written(papers, source):
    # the first batch is answered; every request after it gets 503 until the client gives up
    fake = FakeArxiv(lambda q: ARXIV)
    calls = {"n": 0}

    def callback(request):
        calls["n"] += 1
        return fake(request) if calls["n"] == 1 else (503, {}, b"Service Unavailable")

    responses.add_callback(responses.GET, API_RE, callback=callback)
    result = fill_dates(source, papers, load_taxonomy(), batch=2)
    assert result.error and "giving up" in result.error
    assert {c.entry.id for c in result.filled} == {"example-method-1", "example-method-2"}
    assert _date_line(papers / "example-method-1.yaml") == 'date: "2024-03-11"'
    assert "failed part-way" in report_markdown(result)


@responses.activate
def test_cli_exit_code_output_and_report(papers, tmp_path, capsys):
    responses.add_callback(responses.GET, API_RE, callback=FakeArxiv(lambda q: ARXIV))
    report = tmp_path / "report.md"
    code = main(["dates", "--papers-dir", str(papers), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 3                                             # done, but one id not found and one refused
    assert "filled example-method-1: 2024-03 -> 2024-03-11" in out and "not found example-method-3" in out
    text = report.read_text(encoding="utf-8")
    assert "| example-method-2 | 2403.00002 | 2024-03 | 2024-02-28 |" in text
    assert "example-method-4 (2403.00004)" in text


def test_cli_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["dates", "--papers-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]
    (tmp_path / "p").mkdir()
    assert main(["dates", "--papers-dir", str(tmp_path / "p"), "--limit", "0"]) == 2
    assert "write a positive number" in capsys.readouterr().err


def test_rewrite_touches_only_the_date_line():
    text = 'id: x\ndate: "2024-03"\nsummary: "date: 2024-03 is not a date line"\n'
    assert rewrite(text, "2024-03-11") == 'id: x\ndate: "2024-03-11"\nsummary: "date: 2024-03 is not a date line"\n'
    with pytest.raises(ValueError):
        rewrite("id: x\n", "2024-03-11")

"""End-to-end ingestion against recorded arXiv feeds (tests/data/arxiv/*.xml), fully offline."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
import responses
import yaml

from lvlm_atlas import paths
from lvlm_atlas.__main__ import main
from lvlm_atlas.ingest.config import QuerySpec, load_config
from lvlm_atlas.ingest.fetch import ArxivSource
from lvlm_atlas.ingest.pipeline import run_ingest
from lvlm_atlas.ingest.report import render_report
from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.taxonomy import load_taxonomy
from lvlm_atlas.catalog.validate import validate_catalog
from tests.arxiv_atom import API, FakeArxiv, feed

DATA = Path(__file__).parent / "data"
API_RE = re.compile(re.escape(API) + r".*")
SINCE, UNTIL, TODAY = dt.date(2026, 11, 16), dt.date(2026, 11, 20), dt.date(2026, 11, 21)
EXPECTED = {"prunelens": "2611.10001", "kvista": "2611.10002", "framesift": "2611.10008"}


@pytest.fixture()
def catalog(tmp_path):
    papers = tmp_path / "papers"
    papers.mkdir()
    shutil.copy(paths.PAPERS / "fastv.yaml", papers)
    for f in (DATA / "ingest_catalog").glob("*.yaml"):
        shutil.copy(f, papers)
    rejected = tmp_path / "ingest-rejected.yaml"
    rejected.write_text("rejected:\n  - arxiv: 2611.10005v1\n    reason: learned scorer, not inference efficiency\n")
    return papers, rejected


@pytest.fixture()
def config():
    tax = load_taxonomy()
    cfg = load_config(taxonomy=tax)
    queries = (QuerySpec(node="prefilling/token-compression", terms=("visual token pruning",)),
               QuerySpec(node="decoding/kv-cache-compression", terms=("kv cache",)))
    client = dataclasses.replace(cfg.client, delay_seconds=0.0, page_size=50)
    return dataclasses.replace(cfg, queries=queries, client=client), tax


def recorded(query: str) -> bytes:
    name = "query_kv.xml" if '"kv cache"' in query else "query_token.xml"
    return (DATA / "arxiv" / name).read_bytes()


def recorded_by_id(ids: list[str]) -> bytes:
    """What arXiv answers for id_list=...: the recorded entries with those ids, in one feed."""
    from lxml import etree
    atom = "{http://www.w3.org/2005/Atom}"
    roots = [etree.fromstring((DATA / "arxiv" / n).read_bytes()) for n in ("query_token.xml", "query_kv.xml")]
    keep = []
    for root in roots:
        for entry in root.findall(f"{atom}entry"):
            if entry.findtext(f"{atom}id").rsplit("/", 1)[-1].split("v")[0] in ids and entry not in keep:
                keep.append(entry)
    out = roots[0]
    for entry in out.findall(f"{atom}entry"):
        out.remove(entry)
    for entry in keep:
        out.append(entry)
    out.find("{http://a9.com/-/spec/opensearch/1.1/}totalResults").text = str(len(keep))
    return etree.tostring(out, xml_declaration=True, encoding="UTF-8")


def serve_recorded(script=None) -> list:
    calls = []

    def callback(request):
        from tests.arxiv_atom import params
        p = params(request)
        calls.append(p)
        if script:
            item = script.pop(0)
            if item is not None:
                return item
        if p.get("id_list"):
            return 200, {}, recorded_by_id(p["id_list"].split(","))
        return 200, {"Content-Type": "application/atom+xml"}, recorded(p["search_query"])

    responses.add_callback(responses.GET, API_RE, callback=callback)
    return calls


def run(config, catalog, sleeps=None):
    cfg, tax = config
    papers, rejected = catalog
    source = ArxivSource(cfg.client, sleep=(sleeps if sleeps is not None else []).append)
    return run_ingest(cfg, tax, source, SINCE, UNTIL, papers, rejected, TODAY)


@responses.activate
def test_recorded_feed_yields_exactly_the_expected_candidates(config, catalog):
    calls = serve_recorded()
    result = run(config, catalog)
    assert result.ok, result.errors
    assert {c.id: c.record.arxiv_id for c in result.candidates} == EXPECTED
    papers, _ = catalog
    assert sorted(p.stem for p in papers.glob("*.yaml")) == sorted(["fastv", "fixture-kv", "fixture-pruner", *EXPECTED])
    assert not [p for p in papers.iterdir() if p.name.startswith(".")], "no temporary files left"
    report = validate_catalog(papers, config[1])      # the catalog validator accepts the candidates
    assert not report.problems, report.problems
    # why the others were skipped
    why = {s.record.arxiv_id: s.why for s in result.duplicates}
    assert "same title as catalog entry fastv" in why["2611.10003"]
    assert "rejected" in why["2611.10005"]
    assert "same DOI" in why["2611.10009"] and "fixture-pruner" in why["2611.10009"]
    assert "this run" in why["2611.10008"]           # returned again by the second query
    assert {r.arxiv_id for r, _ in result.off_topic} == {"2611.10006", "2611.10007"}
    # the queries carry the date window and the categories
    assert all("submittedDate:[202611160000 TO 202611202359]" in c["search_query"] for c in calls)
    assert all("cat:cs.CV" in c["search_query"] for c in calls)


@responses.activate
def test_candidate_files_are_schema_valid_with_full_metadata(config, catalog):
    serve_recorded()
    run(config, catalog)
    papers, _ = catalog
    text = (papers / "kvista.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/paper.schema.json\n# arXiv ingestion 2026-11-21")
    paper = Paper.model_validate(yaml.safe_load(text), context={"taxonomy": config[1]})
    assert paper.candidate and paper.source == "arxiv-ingest" and paper.status == "preprint"
    assert paper.identifiers.arxiv == "2611.10002" and paper.identifiers.doi == "10.5555/kvista.2026.42"
    assert paper.authors == ["Lukas Novak", "Hana Sato"]
    assert paper.date == "2026-11-17" and paper.year == 2026 and paper.added == TODAY
    assert paper.comment.startswith("Accepted to EXAMPLECONF 2027") and paper.journal_ref == "Proc. EXAMPLECONF 2027"
    assert [str(c.url) for c in paper.links.code] == ["https://github.com/kvista/kvista"]
    assert paper.abstract.startswith("The key-value (KV) cache") and "\n" not in paper.abstract
    assert paper.primary_node.startswith("decoding/kv-cache-compression")
    prune = Paper.model_validate(yaml.safe_load((papers / "prunelens.yaml").read_text()), context={"taxonomy": config[1]})
    assert prune.primary_node.startswith("prefilling/token-compression")
    assert prune.training_free is True
    assert [str(c.url) for c in prune.links.code] == ["https://github.com/example-lab/PruneLens"]
    sift = Paper.model_validate(yaml.safe_load((papers / "framesift.yaml").read_text()), context={"taxonomy": config[1]})
    assert sift.modality == ["video"]


@responses.activate
def test_rerunning_the_same_window_adds_nothing(config, catalog):
    serve_recorded()
    first = run(config, catalog)
    papers, _ = catalog
    before = {p.name: p.read_bytes() for p in papers.glob("*.yaml")}
    second = run(config, catalog)
    assert len(first.candidates) == 3 and second.candidates == []
    assert {p.name: p.read_bytes() for p in papers.glob("*.yaml")} == before
    assert {s.record.arxiv_id for s in second.duplicates} >= set(EXPECTED.values())


@responses.activate
def test_failed_run_keeps_what_it_validated_and_leaves_no_partial_files(config, catalog):
    # first query succeeds; the second gets 503 on every try
    serve_recorded(script=[None] + [(503, {}, b"")] * 20)
    sleeps: list[float] = []
    result = run(config, catalog, sleeps)
    assert not result.ok and "decoding/kv-cache-compression" in result.errors[0]
    assert {c.id for c in result.candidates} == {"prunelens", "kvista", "framesift"}
    papers, _ = catalog
    assert not [p for p in papers.iterdir() if not p.name.endswith(".yaml")]
    assert len(sleeps) == config[0].client.max_retries
    report = render_report(result, config[1])
    assert "### Errors" in report and "prunelens" in report


@responses.activate
def test_report_escapes_text_from_arxiv(config, catalog, tmp_path):
    from tests.arxiv_atom import Entry
    nasty = Entry(id="2611.20001v1", title="Token | Pruning <script>alert(1)</script> for @everyone in Vision-Language Models",
                  abstract="Efficient visual token pruning for vision-language models cuts latency and FLOPs by 2x.",
                  published="2026-11-18T00:00:00Z")
    responses.add(responses.GET, API_RE, body=feed([nasty]))
    result = run(config, catalog)
    report = render_report(result, config[1])
    assert "<script>" not in report and "&lt;script&gt;" in report
    assert "Token \\| Pruning" in report and "\\@everyone" in report


@responses.activate
def test_cli_ingest_reject_and_new(config, catalog, tmp_path):
    papers, rejected = catalog
    cfg_path = tmp_path / "ingest.yaml"
    raw = yaml.safe_load((paths.CATALOG / "ingest.yaml").read_text())
    raw["client"].update(delay_seconds=0, max_retries=0)
    raw["queries"] = [{"node": "prefilling/token-compression", "terms": ["visual token pruning"]}]
    cfg_path.write_text(yaml.safe_dump(raw))
    serve_recorded()
    report = tmp_path / "report.md"
    common = ["--papers-dir", str(papers), "--config", str(cfg_path), "--rejected", str(rejected)]
    assert main(["ingest", "--since", "2026-11-16", "--until", "2026-11-20", "--report", str(report), *common]) == 0
    assert "prunelens" in report.read_text() and (papers / "prunelens.yaml").exists()
    # a reviewer rejects one: its file goes, and it is never proposed again
    assert main(["ingest", "--reject", "2611.10001v1", "--reason", "not convincing", *common]) == 0
    assert not (papers / "prunelens.yaml").exists()
    assert "2611.10001" in rejected.read_text() and "not convincing" in rejected.read_text()
    assert main(["ingest", "--since", "2026-11-16", "--until", "2026-11-20", "--report", str(report), *common]) == 0
    assert not (papers / "prunelens.yaml").exists()
    # accepted entries cannot be rejected through the command
    assert main(["ingest", "--reject", "2403.06764", *common]) == 1
    # `new` scaffolds one entry by id, and refuses a known one
    new_args = ["--papers-dir", str(papers), "--config", str(cfg_path), "--rejected", str(rejected)]
    assert main(["new", "2611.10006", *new_args]) == 0       # off-topic for ingestion, but a contributor asked
    written = papers / "real-time-semantic-segmentation-of-urban-scenes.yaml"
    assert written.exists(), sorted(p.name for p in papers.iterdir())
    assert main(["new", "https://arxiv.org/abs/2611.10006v1", *new_args]) == 2   # known: refused before the network


def test_window_must_be_ordered(config, catalog):
    with pytest.raises(ValueError, match="before --since"):
        cfg, tax = config
        run_ingest(cfg, tax, ArxivSource(cfg.client), UNTIL, SINCE, catalog[0], catalog[1], TODAY)

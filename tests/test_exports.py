"""Exports are deterministic, complete and well-formed."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lvlm_atlas.catalog.loader import load_catalog
from lvlm_atlas.catalog.exports import FORMATS, bibtex_entry, render_export
from lvlm_atlas.catalog.stats import catalog_stats
from tests.catalog_factory import paper_dict, write_paper

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {"id", "title", "authors", "year", "venue", "arxiv", "doi", "url", "code", "stages", "placements",
            "bottleneck", "granularity", "modality", "training_free", "method"}


@pytest.fixture()
def small_catalog(tmp_path):
    papers = tmp_path / "papers"
    write_paper(papers, paper_dict(1))
    write_paper(papers, paper_dict(2, status="preprint", venue=None, authors=["Émile Zoë Ünal", "R. {Brace} & Co_1"]))
    write_paper(papers, paper_dict(3, venue="TMLR", kind="method", identifiers={"arxiv": "2403.00003", "doi": "10.1234/abc_def"},
                                   links={"paper": "https://arxiv.org/abs/2403.00003"}, date="2024-03"))
    return load_catalog(papers)


def test_json_export_fields_and_determinism(small_catalog):
    first = render_export(small_catalog, "json")
    assert first == render_export(small_catalog, "json")
    rows = json.loads(first)
    assert [r["id"] for r in rows] == ["example-method-1", "example-method-2", "example-method-3"]
    assert REQUIRED <= set(rows[0])
    assert rows[0]["stages"] == ["prefilling"] and rows[0]["authors"] == ["Ada Lovelace", "Alan Turing"]


def test_yaml_and_csv_round_trip(small_catalog):
    assert yaml.safe_load(render_export(small_catalog, "yaml")) == json.loads(render_export(small_catalog, "json"))
    rows = list(csv.DictReader(io.StringIO(render_export(small_catalog, "csv"))))
    assert len(rows) == 3 and rows[1]["authors"] == "Émile Zoë Ünal; R. {Brace} & Co_1"


def test_bibtex_entry_types_and_escaping(small_catalog):
    by_id = small_catalog.by_id
    conf = bibtex_entry(by_id["example-method-1"])
    assert conf.startswith("@inproceedings{lovelace2024examplemethod1,")
    assert "  author = {Ada Lovelace and Alan Turing}," in conf and "  booktitle = {ECCV 2024}," in conf
    pre = bibtex_entry(by_id["example-method-2"])
    assert pre.startswith("@misc{unal2024examplemethod2,")
    assert r"author = {Émile Zoë Ünal and R. \{Brace\} \& Co\_1}" in pre
    journal = bibtex_entry(by_id["example-method-3"])
    assert journal.startswith("@article{") and "  journal = {TMLR}," in journal and r"doi = {10.1234/abc\_def}" in journal
    # every entry has balanced braces
    for entry in render_export(small_catalog, "bibtex").split("\n@"):
        body = re.sub(r"\\[{}]", "", entry)
        assert body.count("{") == body.count("}")


def test_csljson(small_catalog):
    items = json.loads(render_export(small_catalog, "csljson"))
    assert items[0]["type"] == "paper-conference"
    assert items[0]["author"][0] == {"given": "Ada", "family": "Lovelace"}
    assert items[1]["type"] == "article" and items[1]["publisher"] == "arXiv"
    assert items[2]["type"] == "article-journal" and items[2]["DOI"] == "10.1234/abc_def"


def test_unknown_format_message(small_catalog):
    with pytest.raises(ValueError, match="unknown export format 'xml'; choose one of: json, yaml, csv, bibtex, csljson"):
        render_export(small_catalog, "xml")


def test_stats_counts(small_catalog):
    stats = catalog_stats(small_catalog)
    assert stats["papers"] == 3 and stats["stages"] == {"prefilling": 3}
    assert stats["categories"]["prefilling/token-compression"] == 3
    assert stats["categories"]["dimensions/token-compression/image"] == 3
    assert stats["years"] == {2024: 3}


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_export_writes_file_atomically(tmp_path, fmt):
    out = tmp_path / f"catalog.{fmt}"
    result = subprocess.run([sys.executable, "-m", "lvlm_atlas", "export", "--format", fmt, "-o", str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == render_export(load_catalog(), fmt)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp files left behind


def _random_text(rng) -> str:
    tricky = list(":-#'\"{}[],&*!|>%@`?\\/.\n\t\r") + ["é", "—", "…", "\u00a0", "中", "\u200b", "\ufeff", "\x7f", "\x85",
                                                   "\u2028", "😀", "- ", ": ", " #", "yes", "null", "2024-01-01", "0x1F"]
    n = rng.randint(0, 260 if rng.random() < 0.3 else 25)
    return "".join(rng.choice(tricky) if rng.random() < 0.2 else rng.choice("abcdefgh xyz ") for _ in range(n))


def _loaders():
    loaders = [yaml.SafeLoader]
    if hasattr(yaml, "CSafeLoader"):
        loaders.append(yaml.CSafeLoader)  # libyaml, as many readers of the export will use
    return loaders


def test_yaml_writer_round_trips_hostile_records():
    """Every string (controls, line breaks, quotes, YAML indicators, words YAML 1.1 reads as booleans or
    numbers, emoji) reads back as itself, with both the pure-Python and the libyaml loader."""
    import random

    from lvlm_atlas.catalog.yaml_emit import dump_records

    rng = random.Random(3)
    fixed = ["", " ", "yes", "No", "ON", "off", "null", "Null", "~", "true", "y", "n", "0x1F", "1:20", "1_000",
             "2024-01-01", "3.14", ".inf", "-", "- x", "? x", "a: b", "a:", "a #b", "#x", "&a", "*a", "!tag", "|", ">",
             "%x", "@x", "`x", "'x'", '"x"', "{a}", "[a]", "a, b", "=", "<<", "a\nb", "line\nbreak", "tab\there",
             "trailing ", " leading", "\x00\x07\x1b\x7f\x85\x9f", "\u2028\u2029", "\ufeffbom", "\ufffe\uffff",
             "😀 emoji", "中文 é — …", "\u00a0nbsp", "https://arxiv.org/abs/2403.06764", "FastV", "3D",
             "Token Merging: Your ViT but Faster", "a" * 500]
    rows = [{"id": f"f{i}", "title": text, "authors": [text, "A. B"], "year": 2024, "ok": None, "tf": True,
             "x": False, "empty": []} for i, text in enumerate(fixed)]
    for i in range(1500):
        rows.append({"id": f"p{i}", "title": _random_text(rng), "authors": [_random_text(rng) for _ in range(rng.randint(0, 3))],
                     "year": rng.randint(-5, 2030), "venue": rng.choice([None, _random_text(rng)]),
                     "training_free": rng.choice([None, True, False]), "builds_on": [], "summary": _random_text(rng)})
    text = dump_records(rows)
    text.encode("utf-8")  # writable as UTF-8
    for loader in _loaders():
        assert yaml.load(text, Loader=loader) == rows, loader
    assert dump_records(rows) == text  # deterministic
    assert yaml.safe_load(dump_records([])) == []
    assert yaml.safe_load(dump_records([{}])) == [{}]
    assert "title: FastV\n" in dump_records([{"title": "FastV"}])  # simple text stays readable (unquoted)
    assert 'title: "yes"\n' in dump_records([{"title": "yes"}])


def test_yaml_writer_refuses_values_it_cannot_write_faithfully():
    from lvlm_atlas.catalog.yaml_emit import dump_records

    for bad in ([{"x": 1.5}], [{"x": [["nested"]]}], [{"x": {"a": 1}}], [{1: "a"}], ["not a dict"]):
        with pytest.raises(TypeError):
            dump_records(bad)
    with pytest.raises(ValueError, match="lone surrogate"):
        dump_records([{"title": "bad \ud800 text"}])


def test_yaml_export_of_a_catalog_round_trips(small_catalog):
    from lvlm_atlas.catalog.exports import records

    text = render_export(small_catalog, "yaml")
    for loader in _loaders():
        assert yaml.load(text, Loader=loader) == records(small_catalog)
    assert render_export(small_catalog, "yaml") == text


def test_stats_completeness_counts_what_is_missing(tmp_path):
    import copy
    from tests.site_helpers import RESULTS
    papers = tmp_path / "papers"
    write_paper(papers, paper_dict(1))                                   # token compression, full date
    write_paper(papers, paper_dict(2, date="2024-03", added="2026-11-20"))  # month-only date (allowed before the rule)
    write_paper(papers, paper_dict(3, placements=[{"node": "decoding/kv-cache-compression/token-level", "primary": True}]))
    write_paper(papers, paper_dict(4, kind="benchmark", training_free=None,
                                   placements=[{"node": "resources/benchmarks/image", "primary": True}]))
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "results-vocab.yaml").write_text((ROOT / "catalog" / "results-vocab.yaml").read_text(encoding="utf-8"),
                                                 encoding="utf-8")
    for pid in ("example-method-1", "example-method-3"):
        doc = copy.deepcopy(RESULTS["mergeall"])
        doc["paper"] = pid
        for table in doc["tables"]:
            table["rows"] = [r for r in table["rows"] if r["role"] != "baseline"]
            for r in table["rows"]:
                if r["role"] == "own":
                    r["method"] = pid
        (results / f"{pid}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    catalog = load_catalog(papers)
    c = catalog_stats(catalog)["completeness"]
    assert c["arxiv_month_only_dates"] == ["example-method-2"]
    assert c["methods_without_training_free"] == []
    assert c["results_files"] == 2
    assert c["results_token_compression_papers"] == 1 and c["results_kv_cache_papers"] == 1
    assert c["results_rows"] == sum(len(t.rows) for f in catalog.results for t in f.tables) > 0

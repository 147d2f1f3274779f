"""The validator: every bad input is rejected with a precise `path:line:col: message` and a hint."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from lvlm_atlas.catalog.validate import SCHEMA_COMMENT, near_duplicate_titles, validate_catalog
from tests.catalog_factory import make_catalog, paper_dict, write_paper

ROOT = Path(__file__).resolve().parent.parent


def problems_for(tmp_path: Path, taxonomy, text: str, name: str = "example-method.yaml") -> list[str]:
    papers = tmp_path / "papers"
    write_paper(papers, text, name)
    report = validate_catalog(papers, taxonomy)
    return [f"{Path(p.path).name}:{p.line}:{p.col}: {p.message} | {p.hint}" for p in report.problems]


VALID = """{c}
id: example-method
name: ExampleMethod
title: "Example Method: Pruning Visual Tokens for Testing"
authors: [Ada Lovelace, Alan Turing]
year: 2024
date: 2024-03-11
venue: ECCV 2024
status: published
kind: method
identifiers:
  arxiv: "2403.00001"
links:
  paper: https://arxiv.org/abs/2403.00001
  code:
    - url: https://github.com/example/example
      official: true
placements:
  - node: prefilling/token-compression/attention-guided
    primary: true
bottleneck: [compute]
granularity: [token]
modality: [image]
training_free: true
summary: Drops the visual tokens that receive the least attention after an early layer.
added: 2026-11-21
scenario: [static]
""".format(c=SCHEMA_COMMENT)


def test_valid_entry_has_no_problems(tmp_path, taxonomy):
    assert problems_for(tmp_path, taxonomy, VALID) == []


GOLDEN = [
    # (description, edit to VALID, *expected problem lines)
    ("duplicate key",
     lambda t: t.replace("year: 2024\n", "year: 2024\nyear: 2023\n"),
     "example-method.yaml:7:1: duplicate key 'year' (first defined at line 6) | keep one 'year:' entry; YAML readers silently keep only the last one"),
    ("unknown bottleneck term",
     lambda t: t.replace("bottleneck: [compute]", "bottleneck: [compte]"),
     "example-method.yaml:21:14: bottleneck: unknown bottleneck 'compte'; did you mean 'compute'? allowed: compute, memory-capacity, memory-bandwidth, communication, latency, utilization | "),
    ("javascript URL",
     lambda t: t.replace("url: https://github.com/example/example", "url: javascript:alert(1)"),
     "example-method.yaml:16:12: links.code.0.url: URL scheme 'javascript' is not allowed; write an http:// or https:// URL | "),
    ("unknown key with suggestion",
     lambda t: t.replace("summary:", "sumary:"),
     "example-method.yaml:2:1: missing required key 'summary' | add 'summary:' (see catalog/papers/fastv.yaml for a complete entry)",
     "example-method.yaml:25:1: unknown key 'sumary' | did you mean 'summary'? allowed keys here: abstract, added, authors, bottleneck, builds_on, candidate, comment, date, granularity, id, identifiers, journal_ref, kind, links, method, modality, name, placements, scenario, source, status, summary, title, training_free, venue, year"),
    ("unknown taxonomy node",
     lambda t: t.replace("prefilling/token-compression/attention-guided", "prefilling/token-compresion/attention-guided"),
     "example-method.yaml:19:11: placements: unknown taxonomy node 'prefilling/token-compresion/attention-guided'; did you mean 'prefilling/token-compression/attention-guided'? | "),
    ("arXiv version suffix",
     lambda t: t.replace('arxiv: "2403.00001"', 'arxiv: "2403.00001v2"'),
     "example-method.yaml:12:10: identifiers.arxiv: arXiv id '2403.00001v2' has a version suffix; write '2403.00001' | "),
    ("arXiv id inconsistent with date",
     lambda t: t.replace("date: 2024-03-11", "date: 2023-03-11").replace("year: 2024", "year: 2023").replace("ECCV 2024", "ICCV 2023"),
     "example-method.yaml:2:1: arXiv id 2403.00001 was first posted 2024-03 but date is 2023-03-11; date is the first version's date (a submission up to 3 months before the id's month, announced late, is also accepted when the date has its day) | "),
    ("tab character",
     lambda t: t.replace("  arxiv:", "\tarxiv:"),
     "example-method.yaml:12:1: tab character found | indent with spaces and replace tabs in values by spaces"),
    ("anchor",
     lambda t: t.replace("bottleneck: [compute]", "bottleneck: &b [compute]").replace("granularity: [token]", "granularity: *b"),
     "example-method.yaml:21:13: YAML anchor '&b' is not allowed in catalog files | remove the '&name' anchor and write each value out in full",
     "example-method.yaml:22:14: YAML alias '*b' is not allowed in catalog files | write the value out in full instead of referring to an anchor"),
    ("missing schema comment",
     lambda t: t.replace(SCHEMA_COMMENT + "\n", ""),
     "example-method.yaml:1:1: first line must reference the paper schema | make the first line exactly: " + SCHEMA_COMMENT),
    ("id differs from file name",
     lambda t: t.replace("id: example-method", "id: other-name"),
     "example-method.yaml:2:5: id 'other-name' does not match the file name 'example-method.yaml' | rename the file to other-name.yaml or set id: example-method"),
    ("two primaries",
     lambda t: t.replace("    primary: true\n", "    primary: true\n  - node: encoding/token-compression\n    primary: true\n"),
     "example-method.yaml:19:3: placements: exactly one placement must have 'primary: true' (found 2) | "),
    ("primary placement not on the earliest stage",
     lambda t: t.replace("    primary: true\n", "    primary: true\n  - node: encoding/token-compression\n"),
     "example-method.yaml:19:3: placements: the primary placement 'prefilling/token-compression/attention-guided' is on the "
     "prefilling stage but 'encoding/token-compression' is on the earlier encoding stage; move 'primary: true' to "
     "'encoding/token-compression' (the primary placement is the earliest stage the method acts on; only systems keep a "
     "system/... primary), or remove that placement | "),
    ("a system keeps its system primary",
     lambda t: t.replace("- node: prefilling/token-compression/attention-guided\n    primary: true\n",
                         "- node: system/serving\n    primary: true\n  - node: encoding/token-compression\n")),
    ("published without venue",
     lambda t: t.replace("venue: ECCV 2024", "venue: null"),
     "example-method.yaml:2:1: status is 'published' but venue is empty; write the venue (e.g. 'CVPR 2025') or set status: preprint | "),
    ("missing required key",
     lambda t: t.replace("summary: Drops the visual tokens that receive the least attention after an early layer.\n", ""),
     "example-method.yaml:2:1: missing required key 'summary' | add 'summary:' (see catalog/papers/fastv.yaml for a complete entry)"),
    ("wrong type",
     lambda t: t.replace("year: 2024", "year: twenty"),
     "example-method.yaml:6:7: year: Input should be a valid integer, unable to parse string as an integer | got 'twenty'"),
    ("every unknown term of a facet list",
     lambda t: t.replace("bottleneck: [compute]", "bottleneck: [compte, latncy, memory-bandwidth]"),
     "example-method.yaml:21:14: bottleneck: unknown bottleneck 'compte'; did you mean 'compute'? allowed: compute, memory-capacity, memory-bandwidth, communication, latency, utilization | ",
     "example-method.yaml:21:22: bottleneck: unknown bottleneck 'latncy'; did you mean 'latency'? allowed: compute, memory-capacity, memory-bandwidth, communication, latency, utilization | "),
    ("malformed arXiv id, correct URL",
     lambda t: t.replace('arxiv: "2403.00001"', 'arxiv: "2403.0001"'),
     "example-method.yaml:12:10: identifiers.arxiv: malformed arXiv id '2403.0001': the id itself does not have the form of an arXiv id | "
     "copy the id from the paper's arXiv page; an arXiv id is YYMM.NNNNN (five digits after the dot from 2015 on, e.g. '2403.06764'), "
     "YYMM.NNNN up to 2014, or archive/YYMMNNN for old ids (e.g. 'cs/0601001'); no 'arXiv:' prefix or version"),
    ("year disagrees with the venue's year",
     lambda t: t.replace("year: 2024", "year: 2025"),
     "example-method.yaml:6:7: year 2025 differs from the year 2024 that venue 'ECCV 2024' names | write year: 2024 (the venue's year), or correct the venue"),
    ("year before the arXiv id's (first version's) year",
     lambda t: t.replace("year: 2024", "year: 2023").replace("venue: ECCV 2024", "venue: null").replace("status: published", "status: preprint"),
     "example-method.yaml:6:7: year 2023 is before the first version's date 2024-03-11 | write year: 2024 or later (the venue's year, or the first version's year for preprints)"),
    ("empty scenario",
     lambda t: t.replace("scenario: [static]", "scenario: []"),
     "example-method.yaml:27:11: scenario is empty | write at least one of static, streaming, serving, or [general] when no deployment scenario applies (surveys, accuracy benchmarks)"),
    ("missing scenario",
     lambda t: t.replace("scenario: [static]\n", ""),
     "example-method.yaml:2:1: scenario is empty | write at least one of static, streaming, serving, or [general] when no deployment scenario applies (surveys, accuracy benchmarks)"),
    ("method without training_free",
     lambda t: t.replace("training_free: true", "training_free: null"),
     "example-method.yaml:24:16: training_free is missing for a method | write training_free: true when the method works on a trained model without any (re)training, false otherwise"),
    ("syntax error",
     lambda t: t.replace("modality: [image]", "modality: [image"),
     "example-method.yaml:24:14: YAML syntax error: while parsing a flow sequence did not find expected ',' or ']' | check indentation and quote values that contain ': ' or start with a special character"),
]


@pytest.mark.parametrize("desc,edit,expected", [(g[0], g[1], list(g[2:])) for g in GOLDEN], ids=[g[0] for g in GOLDEN])
def test_golden_messages(tmp_path, taxonomy, desc, edit, expected):
    assert problems_for(tmp_path, taxonomy, edit(VALID)) == expected


@pytest.mark.parametrize("arxiv,date,year,ok", [
    ("2403.00001", "2024-02-29", 2024, True),    # submitted after February's last cut-off, announced in March
    ("2403.00001", "2024-02-20", 2024, True),    # held in moderation, announced in March (like DOP 2507.02909)
    ("2403.00001", "2023-12-01", 2024, True),    # three months before the id's month: still a plausible hold
    ("2403.00001", "2023-11-30", 2024, False),   # four months before: a wrong date or a wrong id
    ("2403.00001", "2024-02", 2024, False),      # month-only dates must match the id
    ("2401.00001", "2023-12-30", 2023, True),    # across a year boundary: the year is the first version's
    ("2403.00001", "2024-04-01", 2024, False),   # never after the id's month
])
def test_arxiv_id_month_allows_late_announced_submissions(tmp_path, taxonomy, arxiv, date, year, ok):
    text = (VALID.replace('arxiv: "2403.00001"', f'arxiv: "{arxiv}"').replace("2403.00001", arxiv)
            .replace("date: 2024-03-11", f"date: {date}").replace("year: 2024", f"year: {year}"))
    if year != 2024:
        text = text.replace("venue: ECCV 2024", "venue: null").replace("status: published", "status: preprint")
    papers = tmp_path / "papers"
    write_paper(papers, text, "example-method.yaml")
    problems = validate_catalog(papers, taxonomy).problems
    assert (problems == []) is ok, [str(p) for p in problems]


def test_year_and_date_not_in_the_future(tmp_path, taxonomy):
    today = dt.date.today()
    future_year = VALID.replace("year: 2024", f"year: {today.year + 1}").replace("ECCV 2024", f"ECCV {today.year + 1}")
    assert problems_for(tmp_path, taxonomy, future_year) == [
        f"example-method.yaml:6:7: year {today.year + 1} is in the future (the current year is {today.year}) | "
        "year is the venue's year, or the first version's year for preprints"]
    tomorrow = today + dt.timedelta(days=1)
    ym = f"{tomorrow.year % 100:02d}{tomorrow.month:02d}"
    future_date = (VALID.replace("2403.00001", f"{ym}.00001").replace("date: 2024-03-11", f"date: {tomorrow.isoformat()}")
                   .replace("year: 2024", f"year: {tomorrow.year}").replace("venue: ECCV 2024", "venue: null")
                   .replace("status: published", "status: preprint").replace("added: 2026-11-21", f"added: {tomorrow.isoformat()}"))
    if tomorrow.year == today.year:  # (on 31 December the year check reports first)
        assert problems_for(tmp_path, taxonomy, future_date) == [
            f"example-method.yaml:7:7: date {tomorrow.isoformat()} is in the future (today is {today.isoformat()}) | "
            "date is the first public version's date, e.g. the arXiv v1 submission date"]


@pytest.mark.parametrize("venue,ok", [("CVPR 2024", True), ("CVPR 2023", False), ("Findings of ACL 2024", True),
                                      ("NeurIPS 2024 Workshops", True), ("TMLR", True), ("ICLR 2025", False)])
def test_venue_year_must_match(tmp_path, taxonomy, venue, ok):
    assert (problems_for(tmp_path, taxonomy, VALID.replace("ECCV 2024", venue)) == []) is ok


@pytest.mark.parametrize("arxiv,ok", [("2403.00001", True), ("2312.8914", False), ("1412.1234", True), ("1412.12345", False),
                                      ("1501.00001", True), ("cs/0601001", True), ("2403.000012", False)])
def test_arxiv_digit_count_depends_on_the_year(arxiv, ok):
    from lvlm_atlas.catalog.models import arxiv_yymm
    assert (arxiv_yymm(arxiv) is not None) is ok


def test_arxiv_entries_need_a_full_date(tmp_path, taxonomy):
    month_only = VALID.replace("date: 2024-03-11", "date: 2024-03")
    assert problems_for(tmp_path, taxonomy, month_only) == []   # added before the cut-off: still accepted
    new_entry = month_only.replace("added: 2026-11-21", "added: 2026-12-05")
    assert problems_for(tmp_path, taxonomy, new_entry) == [
        "example-method.yaml:7:7: date 2024-03 has no day, but the paper has arXiv id 2403.00001 | "
        "write the first version's date YYYY-MM-DD ('Submitted on' of https://arxiv.org/abs/2403.00001v1)"]
    no_arxiv = (new_entry.replace('identifiers:\n  arxiv: "2403.00001"\n', "")
                .replace("https://arxiv.org/abs/2403.00001", "https://example.org/paper"))
    assert problems_for(tmp_path, taxonomy, no_arxiv) == []


def test_non_utf8_and_oversized_and_bom(tmp_path, taxonomy):
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "a.yaml").write_bytes(SCHEMA_COMMENT.encode() + b"\nid: caf\xe9\n")
    (papers / "b.yaml").write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    (papers / "c.yaml").write_bytes(VALID.encode() + b"#" * 70_000)
    (papers / "d.yml").write_bytes(VALID.encode())
    (papers / "e.yaml").write_bytes(b"")
    report = validate_catalog(papers, taxonomy)
    msgs = {Path(p.path).name: p.message for p in report.problems}
    assert msgs["a.yaml"] == "file is not valid UTF-8 (byte 0xe9)"
    assert msgs["b.yaml"] == "file starts with a UTF-8 byte-order mark"
    assert msgs["c.yaml"].startswith("file is ") and "over the 65,536-byte limit" in msgs["c.yaml"]
    assert msgs["d.yml"] == "unexpected file 'd.yml' in catalog/papers"
    assert msgs["e.yaml"] == "file is empty"
    assert report.papers == []


def test_cross_file_duplicates(tmp_path, taxonomy):
    papers = tmp_path / "papers"
    write_paper(papers, paper_dict(1))
    twin = paper_dict(2)
    twin["identifiers"] = {"arxiv": paper_dict(1)["identifiers"]["arxiv"]}
    twin["links"]["paper"] = paper_dict(1)["links"]["paper"]
    twin["date"] = paper_dict(1)["date"]
    write_paper(papers, twin)
    near = paper_dict(3, title=paper_dict(1)["title"].upper() + "!")
    write_paper(papers, near)
    report = validate_catalog(papers, taxonomy)
    lines = [f"{Path(p.path).name}:{p.line}: {p.message}" for p in report.problems]
    def line_of(name: str, key: str) -> int:
        return next(i for i, l in enumerate((papers / name).read_text().splitlines(), 1) if l.lstrip().startswith(key))

    arxiv_line = line_of("example-method-2.yaml", "arxiv:")
    assert f"example-method-2.yaml:{arxiv_line}: duplicate arXiv id 2402.00001 (already used by 'example-method-1' in " \
           + str(papers / "example-method-1.yaml") + ")" in lines
    title_line = line_of("example-method-3.yaml", "title:")
    assert f"example-method-3.yaml:{title_line}: 'example-method-3' has the same title as 'example-method-1'" in lines
    assert len(lines) == 2


def test_near_duplicate_titles_threshold():
    pairs = near_duplicate_titles([
        ("a", "FastV: An Image is Worth 1/2 Tokens After Layer 2"),
        ("b", "FastV An image is worth 1/2 tokens after layer-2."),
        ("c", "An Image is Worth 1/2 Tokens After Layer 3 for Video Models"),
        ("d", "Qwen2-VL: Enhancing Vision-Language Model's Perception of the World at Any Resolution"),
        ("e", "Qwen2.5-VL Technical Report"),
    ])
    assert [(a, b) for a, b, _ in pairs] == [("a", "b")]


def test_method_and_builds_on_must_exist(tmp_path, taxonomy):
    papers = tmp_path / "papers"
    write_paper(papers, paper_dict(1, method="no_such_method", builds_on=["example-method-9"]))
    methods_dir = tmp_path / "methods"
    (methods_dir / "cards").mkdir(parents=True)
    (methods_dir / "cards" / "fastv.yaml").write_text("name: fastv\n")
    report = validate_catalog(papers, taxonomy, methods_dir / "cards")
    msgs = sorted(p.message for p in report.problems)
    assert msgs == ["builds_on 'example-method-9' is not a catalog id",
                    "method 'no_such_method' has no card lvlm_atlas/methods/cards/no_such_method.yaml"]


def test_cli_exit_codes_and_github_annotations(tmp_path):
    papers = tmp_path / "papers"
    write_paper(papers, paper_dict(1))
    ok = subprocess.run([sys.executable, "-m", "lvlm_atlas", "validate", "--papers", str(papers)],
                        cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    write_paper(papers, VALID.replace("bottleneck: [compute]", "bottleneck: [nope]"), "example-method.yaml")
    bad = subprocess.run([sys.executable, "-m", "lvlm_atlas", "validate", "--papers", str(papers)],
                         cwd=ROOT, capture_output=True, text=True, env={"GITHUB_ACTIONS": "true", "PATH": ""})
    assert bad.returncode == 1
    out = bad.stdout.splitlines()
    assert any(line.startswith("::error file=") and ",line=21,col=14::bottleneck: unknown bottleneck 'nope'" in line for line in out)
    assert any(line.endswith("example-method.yaml:21:14: bottleneck: unknown bottleneck 'nope'; allowed: compute, "
                             "memory-capacity, memory-bandwidth, communication, latency, utilization") for line in out)


def test_validator_survives_garbage(tmp_path, taxonomy):
    papers = tmp_path / "papers"
    papers.mkdir()
    samples = [b"[", b"- a\n- b\n", b"a: !!python/object:os.system 'ls'\n", b"key: [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]\n",
               b"id: 1\n", b"\x00\x01\x02", b"? [a]\n: b\n", b"a: 2024-13-45\n", b"... \n---\n---\n"]
    for i, raw in enumerate(samples):
        (papers / f"g{i}.yaml").write_bytes(raw)
    report = validate_catalog(papers, taxonomy)
    assert {Path(p.path).name for p in report.problems} == {f"g{i}.yaml" for i in range(len(samples))}
    assert report.papers == []


def test_synthetic_catalog_is_valid(tmp_path, taxonomy):
    papers = make_catalog(tmp_path / "papers", 50)
    report = validate_catalog(papers, taxonomy)
    assert report.problems == [] and len(report.papers) == 50


def test_parallel_validation_gives_the_same_report(tmp_path, taxonomy):
    papers = make_catalog(tmp_path / "papers", 30)
    write_paper(papers, VALID.replace("bottleneck: [compute]", "bottleneck: [nope]"), "example-method.yaml")
    write_paper(papers, paper_dict(31, title=paper_dict(3)["title"]))
    # files the worker parses (the last ones): a YAML error, a duplicate key, a wrong first line
    write_paper(papers, VALID.replace("name: ", "name: [unclosed ", 1), "zz-syntax.yaml")
    write_paper(papers, VALID.replace("year: ", "year: 2024\nyear: ", 1), "zz-twice.yaml")
    write_paper(papers, "\n".join(VALID.split("\n")[1:]), "zz-first-line.yaml")
    serial = validate_catalog(papers, taxonomy, workers=1)
    parallel = validate_catalog(papers, taxonomy, workers=2)
    assert [str(p) for p in parallel.problems] == [str(p) for p in serial.problems]
    assert {p.path.rsplit("/", 1)[-1] for p in serial.problems} >= {"zz-syntax.yaml", "zz-twice.yaml", "zz-first-line.yaml"}
    assert [p.id for p in parallel.papers] == [p.id for p in serial.papers]

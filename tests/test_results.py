"""Paper-reported results: the checker's messages, the leaderboards and paper sections built from them,
comparison edges, and exports."""
from __future__ import annotations

import copy
import json

import pytest
import yaml

from lvlm_atlas.catalog.results import check_file, comparisons, load_results
from lvlm_atlas.site.pages import results as rp
from tests.site_helpers import RESULTS, built_site

IDS = {"mergeall", "fastprune"}


def _write(tmp_path, doc, name="mergeall"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _problems(tmp_path, mutate):
    doc = copy.deepcopy(RESULTS["mergeall"])
    mutate(doc)
    _, problems = check_file(_write(tmp_path, doc), IDS)
    return [p.split("mergeall.yaml: ", 1)[1] for p in problems]


def test_valid_file_has_no_problems(tmp_path):
    rf, problems = check_file(_write(tmp_path, RESULTS["mergeall"]), IDS)
    assert problems == [] and rf.tables[0].rows[1].scores["gqa"] == 57.5


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["tables"][0]["rows"][1]["scores"].update(gqa=157.5),
     "tables[0] (Table 1) rows[1]: gqa = 157.5 outside 0..100 (accuracy)"),
    (lambda d: d["tables"][0]["rows"][1]["scores"].update(mme=3100),
     "tables[0] (Table 1) rows[1]: mme = 3100.0 outside 0..2000 (score)"),
    (lambda d: d["tables"][0].update(model="llava-9b"),
     "tables[0] (Table 1): unknown model 'llava-9b'; use one of"),
    (lambda d: d["tables"][0]["rows"][1]["scores"].update(gqq=50),
     "tables[0] (Table 1) rows[1]: unknown benchmark 'gqq'; use a key of catalog/results-vocab.yaml benchmarks"),
    (lambda d: d["tables"][0]["rows"].append(copy.deepcopy(d["tables"][0]["rows"][1])),
     "tables[0] (Table 1) rows[4]: duplicate row (same table, model, method, variant and setting)"),
    (lambda d: d["tables"][0]["rows"][3].update(method="nosuchpaper"),
     "tables[0] (Table 1) rows[3]: method 'nosuchpaper' is not a catalog paper id; write its id or add the paper"),
    (lambda d: d["tables"][0]["rows"][3].update(role="own"),
     "tables[0] (Table 1) rows[3]: role own is for the paper's own method (mergeall); use role: baseline"),
    (lambda d: d.update(paper="fastprune"), "paper: 'fastprune' must equal the file name; write paper: mergeall"),
])
def test_problems_are_one_precise_line(tmp_path, mutate, message):
    problems = _problems(tmp_path, mutate)
    assert any(p.startswith(message) for p in problems), problems


def test_a_row_without_a_setting_is_rejected(tmp_path):
    problems = _problems(tmp_path, lambda d: d["tables"][0]["rows"][1].update(setting={}))
    assert problems == ["tables.0.rows.1.setting: Value error, give the setting: visual_tokens, retention, "
                        "kv_budget, kv_tokens, kv_bits or flops_ratio"]


def test_the_real_results_files_validate():
    from lvlm_atlas import paths

    ids = {p.stem for p in paths.PAPERS.glob("*.yaml")}
    files, problems = load_results(paths.CATALOG / "results", ids)
    assert problems == []
    for f in files:
        assert any(r.role == "own" for t in f.tables for r in t.rows), f.paper


def test_relative_score_uses_the_same_papers_unpruned_row():
    rows = rp.flatten(built_site().catalog.results)
    own64 = next(r for r in rows if r.source_paper == "mergeall" and r.role == "own" and r.setting[1] == 64)
    base = rp.unpruned_for(rows, own64)
    assert base.source_paper == "mergeall" and base.score["gqa"] == 61.9
    expect = 100 * (57.5 / 61.9 + 1690 / 1862 + 80.1 / 85.9) / 3
    assert rp.relative(own64, base) == pytest.approx(expect)


def test_comparison_edges_come_from_baseline_rows():
    assert comparisons(built_site().catalog.results) == {("mergeall", "fastprune")}


def test_leaderboard_page_and_paper_sections():
    tree = built_site()
    page = (tree.site / "results" / "llava-1.5-7b" / "index.html").read_text(encoding="utf-8")
    assert "atlas-sortable" in page and "57.5" in page and "Table 1 of arXiv v2" in page
    assert "<svg" in page and "visual tokens kept" in page
    # both papers report different unpruned GQA: the page says so, attributed
    assert "61.9" in page and "62" in page and "Unpruned baselines" in page
    # fastprune's 64-token numbers appear in two papers: the "reported by" view shows both, attributed
    assert "re-run as a baseline" in page and "46.1" in page and "49.6" in page
    assert "<b>v2</b>" not in page and "&lt;b&gt;v2&lt;/b&gt;" in page
    merge = (tree.site / "papers" / "mergeall" / "index.html").read_text(encoding="utf-8")
    assert "Reported results" in merge and "Compared against" in merge
    fast = (tree.site / "papers" / "fastprune" / "index.html").read_text(encoding="utf-8")
    assert "Compared by" in fast
    data = json.loads((tree.site / "assets" / "data" / "results.json").read_text(encoding="utf-8"))
    assert {r["method"] for r in data} == {"unpruned", "mergeall", "fastprune", "hostile-entry"} and len(data) == 7
    csv_text = (tree.site / "assets" / "data" / "results.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0].startswith("source_paper,paper_version,table,model,method")


def test_no_page_calls_random_weight_cpu_output_a_benchmark_result():
    tree = built_site()
    card = (tree.site / "methods" / "fastprune" / "index.html").read_text(encoding="utf-8")
    assert "CPU smoke test" in card and "never accuracy" in card
    paper = (tree.site / "papers" / "fastprune" / "index.html").read_text(encoding="utf-8")
    assert "Only a CPU smoke test on random weights so far" in paper
    home = (tree.site / "index.html").read_text(encoding="utf-8")
    assert "measured on real models" not in home


def test_a_duplicate_key_in_a_results_file_is_one_line(tmp_path):
    path = _write(tmp_path, RESULTS["mergeall"])
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("paper: mergeall\n", "paper: mergeall\npaper: mergeall\n", 1), encoding="utf-8")
    _, problems = check_file(path, IDS)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: line 2, column 1: duplicate key 'paper'")


def test_a_duplicate_benchmark_in_the_vocabulary_is_reported(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _write(results, RESULTS["mergeall"])
    vocab = {"models": {"llava-1.5-7b": "LLaVA-1.5-7B"},
             "benchmarks": {"gqa": {"label": "GQA", "metric": "accuracy", "min": 0, "max": 100}}}
    text = yaml.safe_dump(vocab, sort_keys=False)
    text += "  gqa: {label: GQA again, metric: accuracy, min: 0, max: 100}\n"
    (tmp_path / "results-vocab.yaml").write_text(text, encoding="utf-8")
    files, problems = load_results(results, IDS)
    assert files == [] and len(problems) == 1
    assert "results-vocab.yaml: line " in problems[0] and "duplicate key 'gqa'" in problems[0]

"""`atlas` commands end to end on the tiny presets, plus the offline dataset."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from lvlm_atlas.methods import bench, dataset  # noqa: E402
from lvlm_atlas.__main__ import main  # noqa: E402


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return dataset.generate(tmp_path_factory.mktemp("shapes"), n=3, size=112)


def test_dataset_is_deterministic_and_loads(tmp_path, shapes):
    again = dataset.generate(tmp_path, n=3, size=112)
    assert again.read_text() == shapes.read_text()
    assert (tmp_path / "images" / "0000.png").read_bytes() == (shapes.parent / "images" / "0000.png").read_bytes()
    items = dataset.load(shapes)
    assert len(items) == 3 and all(it["answers"] for it in items)
    assert items[0]["image"].startswith(str(shapes.parent))


def test_dataset_loader_reports_bad_lines(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png", "question": "q"}\n{not json}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        dataset.load(bad)
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match="missing key"):
        dataset.load(bad)


def test_exact_match_normalises():
    assert dataset.exact_match(" Red.\nmore", ["red"])
    assert not dataset.exact_match("reddish", ["red"])
    assert dataset.exact_match("3", ["3", "three"])


def test_list_command(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fastv" in out and "in_llm" in out and "visionzip" in out


def test_run_command_prints_answer_and_stats(shapes, capsys):
    img = str(shapes.parent / "images" / "0000.png")
    assert main(["run", "fastv", "--model", "tiny-llava", "--image", img, "--prompt", "What color?",
                 "--max-new-tokens", "3", "--compare", "--param", "k=1", "--budget", "16"]) == 0
    out = capsys.readouterr().out
    for needle in ("answer:", "visual tokens: 64 -> 16", "TTFT", "TPOT", "peak memory", "method overhead",
                   "attention: sdpa", "greedy match"):
        assert needle in out
    assert main(["run", "fastv", "--image", img, "--prompt", "x", "--json", "--max-new-tokens", "2"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["visual_tokens_after"] == 32 and stats["params"]["k"] == 2


def test_run_command_rejects_bad_input(shapes, capsys):
    assert main(["run", "fastv", "--image", "/nonexistent.png", "--prompt", "x"]) == 2
    img = str(shapes.parent / "images" / "0000.png")
    assert main(["run", "fastv", "--image", img, "--prompt", "x", "--param", "nope=1"]) == 2
    assert "valid" in capsys.readouterr().err


def test_bench_writes_valid_results_with_provenance(shapes, tmp_path):
    out = tmp_path / "res.json"
    assert main(["bench", "--methods", "random,fastv", "--models", "tiny-llava", "--budgets", "8,16",
                 "--dataset", str(shapes), "--repeats", "1", "--warmup", "0", "--max-new-tokens", "2",
                 "--out", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert bench.validate_results(doc) == []
    rows = doc["results"]
    assert [(r["method"], r["budget"]) for r in rows] == [("none", None), ("random", 8), ("random", 16),
                                                         ("fastv", 8), ("fastv", 16)]
    base = rows[0]
    assert base["greedy_match"] == 1.0 and base["first_token_kl"] == 0.0
    assert rows[1]["visual_tokens_after"] == 8 and rows[1]["visual_tokens_before"] == 64
    assert all(r["accuracy"] is not None and 0 <= r["accuracy"] <= 1 for r in rows)
    assert doc["provenance"]["attention_backend"] == "sdpa" and "bench" in doc["provenance"]["command"]


def test_bench_shards_partition_the_jobs(shapes, tmp_path):
    cfg = bench.BenchConfig(methods=["random", "pool"], models=["a", "b"], budgets=[8, 16], items=[])
    jobs = bench.expand_jobs(cfg)
    parts = [bench.shard(jobs, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(sum(parts, []), key=jobs.index) == jobs
    assert not set(parts[0]) & set(parts[1])
    with pytest.raises(ValueError):
        bench.shard(jobs, "4/3")
    with pytest.raises(ValueError):
        bench.shard(jobs, "half")
    out = tmp_path / "s.json"
    assert main(["bench", "--methods", "random", "--models", "tiny-llava", "--budgets", "8", "--dataset", str(shapes),
                 "--limit", "1", "--repeats", "1", "--warmup", "0", "--max-new-tokens", "1", "--shard", "2/2",
                 "--out", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert [r["method"] for r in doc["results"]] == ["random"] and doc["provenance"]["shard"] == "2/2"


def test_bench_rejects_unknown_methods(tmp_path, capsys):
    assert main(["bench", "--methods", "nope", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_validate_results_flags_missing_fields():
    assert "schema must be 1" in bench.validate_results({"schema": 2, "provenance": {}, "results": []})
    problems = bench.validate_results({"schema": 1, "provenance": {"device": "x"}, "results": [{"method": "a"}]})
    assert any("provenance.torch" in p for p in problems) and any("results[0].ttft_ms" in p for p in problems)


@pytest.mark.slow
def test_bench_over_a_local_ray_instance(shapes, tmp_path):
    ray = pytest.importorskip("ray")
    cfg = bench.BenchConfig(methods=["random"], models=["tiny-llava"], budgets=[8], items=dataset.load(shapes)[:1],
                            repeats=1, warmup=0, max_new_tokens=1)
    calls = []
    rows = bench.run_jobs_ray(bench.expand_jobs(cfg), cfg, address="local", progress=calls.append)
    assert [(r["method"], r["visual_tokens_after"]) for r in rows] == [("none", 64), ("random", 8)]
    assert calls == [1, 1] and not ray.is_initialized()

"""The benchmark result files (`atlas merge`) and the GPU benchmark workflow."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _results_doc(shard: str, host: str, rows: list[dict], torch_version: str = "2.13.0") -> dict:
    prov = {"device": "gpu", "torch": torch_version, "transformers": "5.23.0", "attention_backend": "sdpa",
            "git_commit": "abc", "date": f"2026-01-0{shard[0]}T00:00:00+00:00", "host": host, "command": "x",
            "shard": shard}
    return {"schema": 1, "provenance": prov, "results": rows}


def _row(method: str) -> dict:
    keys = ["params", "budget", "visual_tokens_before", "visual_tokens_after", "ttft_ms", "tpot_ms", "prefill_ms",
            "method_overhead_ms", "peak_memory_bytes", "kv_cache_bytes", "greedy_match", "first_token_kl",
            "accuracy", "repeats"]
    return {"method": method, "model": "m", **{k: None for k in keys}}


def test_merge_command_joins_shards_and_refuses_mismatched_runs(tmp_path, capsys):
    import json

    from lvlm_atlas.__main__ import main

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_results_doc("1/2", "h1", [_row("none")])))
    b.write_text(json.dumps(_results_doc("2/2", "h2", [_row("fastv")])))
    out = tmp_path / "m.json"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["method"] for r in doc["results"]] == ["none", "fastv"]
    assert [p["shard"] for p in doc["provenance"]["parts"]] == ["1/2", "2/2"]
    assert "shard" not in doc["provenance"] and doc["provenance"]["date"].startswith("2026-01-02")
    b.write_text(json.dumps(_results_doc("2/2", "h2", [_row("fastv")], torch_version="2.14.0")))
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "n.json")]) == 2
    assert "torch" in capsys.readouterr().err and not (tmp_path / "n.json").exists()


def test_benchmark_workflow_is_valid_and_never_runs_pull_requests():
    import shutil

    import yaml

    path = ROOT / ".github" / "workflows" / "benchmark.yml"
    wf = yaml.safe_load(path.read_text())
    triggers = wf[True] if True in wf else wf["on"]     # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"push", "schedule", "workflow_dispatch"}
    assert triggers["push"]["branches"] == ["main"] and set(triggers["push"]["paths"]) == {"lvlm_atlas/methods/**", "lvlm_atlas/kernels/**"}
    assert wf["permissions"] == {"contents": "read"}
    assert wf["jobs"]["sweep"]["runs-on"] == ["self-hosted", "gpu"]
    assert all("pull_request" in job["if"] for job in wf["jobs"].values())
    exe = shutil.which("check-jsonschema") or str(ROOT / ".venv" / "bin" / "check-jsonschema")
    if Path(exe).exists():
        out = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr

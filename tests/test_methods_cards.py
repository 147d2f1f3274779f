"""Method cards and the registry are plain data: readable without torch, consistent with each other."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lvlm_atlas.methods import registry
from lvlm_atlas.methods.stages import Stage

ROOT = Path(__file__).resolve().parent.parent
CARD_KEYS = {"name", "label", "paper", "stage", "signal", "summary", "attention_backends", "batch", "models",
             "parameters", "claims", "notes"}


def test_importing_methods_and_reading_cards_does_not_import_torch():
    code = ("import sys, lvlm_atlas.methods as methods; methods.load_cards(); methods.names(); "
            "import lvlm_atlas.cli.list; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_method_has_a_complete_card(name):
    card = registry.load_card(name)
    assert set(card) == CARD_KEYS
    assert Stage(card["stage"])
    assert card["batch"] in ("1", "any")
    assert set(card["attention_backends"]) <= {"sdpa", "eager", "flash_attention_2"}
    for claim in card["claims"]:
        assert {"model", "benchmark", "metric", "value", "baseline", "setting"} <= set(claim)
    for p in card["parameters"]:
        assert {"name", "type", "default", "description"} <= set(p)


@pytest.mark.parametrize("name", registry.names())
def test_card_matches_the_implementation(name):
    import dataclasses

    pytest.importorskip("torch")
    cls = registry.get(name)
    card = registry.load_card(name)
    assert card["stage"] == cls.stage.value
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    for p in card["parameters"]:
        assert p["name"] in fields, f"card parameter {p['name']} is not a field of {cls.__name__}"
        assert p["default"] == fields[p["name"]]


def test_cards_dir_has_no_orphans():
    assert {p.stem for p in registry.CARDS_DIR.glob("*.yaml")} == set(registry.names())


def test_card_name_must_equal_file_name(tmp_path, monkeypatch):
    (tmp_path / "foo.yaml").write_text("name: bar\n")
    monkeypatch.setattr(registry, "CARDS_DIR", tmp_path)
    with pytest.raises(ValueError, match="does not equal"):
        registry.load_card("foo")


def test_unknown_method_and_bad_parameters_are_explained():
    with pytest.raises(registry.UnknownMethodError, match="known methods"):
        registry.get("nope")
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match="valid:"):
        registry.create("fastv", kk=3)


def test_register_rejects_bad_and_duplicate_names():
    with pytest.raises(ValueError):
        registry.register("Bad-Name")

    @registry.register("test_dummy_method")
    class A:
        pass

    with pytest.raises(ValueError, match="already registered"):
        @registry.register("test_dummy_method")
        class B:
            pass
    registry._REGISTERED.pop("test_dummy_method")


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
    assert triggers["push"]["branches"] == ["main"] and set(triggers["push"]["paths"]) == {"methods/**", "kernels/**"}
    assert wf["permissions"] == {"contents": "read"}
    assert wf["jobs"]["sweep"]["runs-on"] == ["self-hosted", "gpu"]
    assert all("pull_request" in job["if"] for job in wf["jobs"].values())
    exe = shutil.which("check-jsonschema") or str(ROOT / ".venv" / "bin" / "check-jsonschema")
    if Path(exe).exists():
        out = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr

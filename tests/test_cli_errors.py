"""Issue 17, CLI: every user error is ONE line on stderr saying what was wrong and what to write instead,
exit code 2, found before any model loads or network call (atlas run, bench, new, cost)."""
from __future__ import annotations

import json
import re
import shutil
import socket

import pytest
import requests
import responses
import yaml
from urllib3.exceptions import MaxRetryError, NameResolutionError

from lvlm_atlas import paths
from lvlm_atlas.cli import main
from tests.arxiv_atom import API

PRESETS = ("tiny-llava, tiny-llava-next, tiny-qwen2-vl, tiny-qwen2.5-vl, mid-llava@random, llava-1.5-7b@random, "
           "llava-1.5-13b@random, llava-next-7b@random, qwen2-vl-7b@random")
BUDGET_HINT = "write a number of visual tokens kept (e.g. 64) or a fraction of them (e.g. 0.25)"


@pytest.fixture()
def images(tmp_path):
    from PIL import Image
    ok = tmp_path / "ok.png"
    Image.new("RGB", (64, 64), "red").save(ok)
    (tmp_path / "notes.png").write_text("not an image at all")
    data = ok.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    return tmp_path


@pytest.fixture()
def no_model_load(monkeypatch):
    """Any model load fails the test: the checks must come first."""
    from lvlm_atlas.methods import presets

    def boom(*a, **kw):
        raise AssertionError("a model was loaded before the input was checked")
    monkeypatch.setattr(presets, "load", boom)


def one_line_error(capsys, code: int, expected_code: int = 2) -> str:
    out, err = capsys.readouterr()
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("extra, message", [
    (["--image", "/nonexistent/x.png"],
     "error: --image /nonexistent/x.png: no such file; write the path of an image file (PNG, JPEG, ...)"),
    (["--image", "{d}/notes.png"],
     "error: --image {d}/notes.png is not an image PIL can read; write the path of a PNG or JPEG image"),
    (["--image", "{d}/trunc.png"],
     "error: --image {d}/trunc.png is a damaged image (Truncated File Read); write the path of an intact PNG or JPEG image"),
    (["--image", "{d}/ok.png", "--model", "llava-7b"],
     f"error: --model 'llava-7b' is not a known model: write a preset ({PRESETS}) or a Hugging Face hub id such as "
     "llava-hf/llava-1.5-7b-hf"),
    (["--image", "{d}/ok.png", "--budget", "-3"], f"error: --budget -3 must be positive; {BUDGET_HINT}"),
    (["--image", "{d}/ok.png", "--budget", "1.5"],
     f"error: --budget 1.5: a fraction is at most 1 and a token count is a whole number; {BUDGET_HINT}"),
    (["--image", "{d}/ok.png", "--budget", "lots"], f"error: --budget 'lots' is not a number; {BUDGET_HINT}"),
    (["--image", "{d}/ok.png", "--param", "bogus=1"],
     "error: method 'fastv' has no parameter(s) bogus; valid: budget, k, score_backend, seed"),
    (["--image", "{d}/ok.png", "--dtype", "float8"],
     "error: --dtype 'float8' is not supported; write one of float32, float16, bfloat16"),
])
def test_run_user_errors_are_one_line_before_the_model_loads(images, no_model_load, capsys, extra, message):
    argv = ["run", "fastv", "--prompt", "What colour?", *[a.format(d=images) for a in extra]]
    assert one_line_error(capsys, main(argv)) == message.format(d=images)


def test_run_unknown_method(images, no_model_load, capsys):
    line = one_line_error(capsys, main(["run", "fastvv", "--image", str(images / "ok.png"), "--prompt", "x"]))
    assert line.startswith("error: unknown method 'fastvv'; known methods: ") and line.endswith("; see `atlas list`")


def test_run_offline_hub_id_fails_fast(images, no_model_load, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = one_line_error(capsys, main(["run", "fastv", "--image", str(images / "ok.png"), "--prompt", "x",
                                        "--model", "nobody/no-such-model"]))
    assert line == ("error: --model 'nobody/no-such-model' is not in the local Hugging Face cache and huggingface.co "
                    "cannot be reached (offline): download it first (huggingface-cli download nobody/no-such-model) "
                    "or use a preset such as tiny-llava")


def test_run_budget_above_the_visual_token_count(images, no_model_load, capsys):
    line = one_line_error(capsys, main(["run", "fastv", "--image", str(images / "ok.png"), "--prompt", "x",
                                        "--budget", "500", "--max-new-tokens", "1"]))
    assert line == ("error: --budget 500 is more than the 64 visual tokens tiny-llava makes of this image; "
                    "write at most 64 or a fraction such as 0.25")


# bench -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--models", "tiny-llava,llava-7b"],
     f"error: --models entry 'llava-7b' is not a known model: write a preset ({PRESETS}) or a Hugging Face hub id "
     "such as llava-hf/llava-1.5-7b-hf"),
    (["--budgets", "8,-1"], f"error: --budgets entry -1 must be positive; {BUDGET_HINT}"),
    (["--param", "k=1"], "error: --param k=...: write METHOD.KEY=VALUE, e.g. fastv.k=3"),
    (["--param", "fastv.bogus=1"], "error: method 'fastv' has no parameter(s) bogus; valid: budget, k, score_backend, seed"),
    (["--param", "snapkv.window=4"],
     "error: --param for snapkv, which is not in --methods; add it to --methods or drop the --param"),
    (["--dataset", "/nonexistent/items.jsonl"],
     'error: --dataset /nonexistent/items.jsonl: no such file; write the path of a JSONL file '
     '(one {"image": ..., "question": ...} per line)'),
    (["--repeats", "0"], "error: --repeats 0: write 1 or more"),
])
def test_bench_user_errors_are_one_line_before_any_model_loads(tmp_path, no_model_load, capsys, extra, message):
    out = tmp_path / "res.json"
    argv = ["bench", "--methods", "fastv", "--budgets", "8", "--n", "2", "--out", str(out), "--no-progress", *extra]
    assert one_line_error(capsys, main(argv)) == message
    assert not out.exists()


def test_bench_warns_about_budgets_not_below_the_visual_token_count(tmp_path, monkeypatch, capsys):
    from lvlm_atlas.methods import bench
    monkeypatch.setattr(bench, "run_model_jobs", lambda model, jobs, cfg, progress=None, loader=None: [
        {"model": model, "method": j.method, "budget": j.budget, "attention_backend": "sdpa"} for j in jobs])
    assert main(["bench", "--methods", "fastv", "--budgets", "16,64", "--models", "tiny-llava", "--n", "1",
                 "--out", str(tmp_path / "r.json"), "--no-progress"]) == 0
    assert capsys.readouterr().err.strip() == (
        "warning: --budgets entry 64 is not below the 64 visual tokens tiny-llava makes of an image; "
        "that job keeps every visual token")


def test_bench_dataset_with_a_corrupt_image_is_refused_up_front(tmp_path, images, no_model_load, capsys):
    ds = tmp_path / "items.jsonl"
    ds.write_text(json.dumps({"image": str(images / "ok.png"), "question": "q", "id": "a"}) + "\n"
                  + json.dumps({"image": str(images / "notes.png"), "question": "q", "id": "b"}) + "\n")
    line = one_line_error(capsys, main(["bench", "--methods", "fastv", "--budgets", "8", "--dataset", str(ds), "--out",
                                        str(tmp_path / "r.json"), "--no-progress"]))
    assert line == (f"error: dataset item b: image {images / 'notes.png'} is not an image PIL can read; "
                    "write the path of a PNG or JPEG image")


def test_bench_writes_finished_jobs_before_failing(tmp_path, monkeypatch, capsys):
    from lvlm_atlas.methods import bench

    def fake_jobs(model, jobs, cfg, progress=None, loader=None):   # the real one returns nothing until every job is done
        if any(j.method == "fastv" and j.budget == 16 for j in jobs):
            raise RuntimeError("CUDA out of memory")
        return [{"model": model, "method": j.method, "budget": j.budget, "attention_backend": "sdpa"} for j in jobs]

    monkeypatch.setattr(bench, "run_model_jobs", fake_jobs)
    out = tmp_path / "res.json"
    code = main(["bench", "--methods", "fastv", "--budgets", "8,16,32", "--n", "2", "--out", str(out), "--no-progress"])
    line = one_line_error(capsys, code, expected_code=1)
    assert line == (f"error: job 3 of 4 (tiny-llava, fastv, budget 16) failed: RuntimeError: CUDA out of memory; "
                    f"the 2 finished jobs (2 results) are in {out}")
    doc = json.loads(out.read_text())
    assert [(r["method"], r["budget"]) for r in doc["results"]] == [("none", None), ("fastv", 8)]
    assert doc["provenance"]["incomplete"]["jobs_done"] == 2


# new -----------------------------------------------------------------------------------------------------

@pytest.fixture()
def new_env(tmp_path):
    papers = tmp_path / "papers"
    papers.mkdir()
    shutil.copy(paths.PAPERS / "fastv.yaml", papers)
    rejected = tmp_path / "rejected.yaml"
    rejected.write_text("rejected:\n  - arxiv: 2611.10005v1\n    reason: off-topic\n")
    cfg = tmp_path / "ingest.yaml"
    raw = yaml.safe_load((paths.CATALOG / "ingest.yaml").read_text())
    raw["client"].update(delay_seconds=0, max_retries=2, backoff_seconds=0.01, backoff_max_seconds=0.01)
    cfg.write_text(yaml.safe_dump(raw))
    return ["--papers-dir", str(papers), "--config", str(cfg), "--rejected", str(rejected)], papers


@responses.activate
def test_new_checks_the_catalog_before_the_network(new_env, capsys):
    args, papers = new_env
    line = one_line_error(capsys, main(["new", "2403.06764", *args]))
    assert line == (f"error: 2403.06764 is already in the catalog (catalog entry fastv); "
                    f"edit {papers / 'fastv.yaml'} instead")
    line = one_line_error(capsys, main(["new", "2611.10005", *args]))
    assert line.startswith("error: 2611.10005 is on the rejected list ")
    assert len(responses.calls) == 0


@responses.activate
def test_new_offline_fails_fast_with_a_message(new_env, capsys):
    args, _ = new_env

    def dns_failure(request):   # what requests raises when the machine has no DNS
        reason = NameResolutionError("export.arxiv.org", None, socket.gaierror(-3, "Temporary failure in name resolution"))
        raise requests.exceptions.ConnectionError(MaxRetryError(None, "/api/query", reason=reason), request=request)

    responses.add_callback(responses.GET, re.compile(re.escape(API) + r".*"), callback=dns_failure)
    line = one_line_error(capsys, main(["new", "2611.20002", *args]), expected_code=1)
    assert line == ("error: cannot reach arXiv (export.arxiv.org): DNS lookup failed; this machine looks offline. "
                    "Check the network connection and rerun")
    assert len(responses.calls) == 1       # no retries


def test_new_rejects_a_malformed_id(capsys):
    line = one_line_error(capsys, main(["new", "24031.1"]))
    assert line == "error: '24031.1' is not an arXiv id; write e.g. 2403.06764 or cs/0601001"


# cost ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--images", "-2"], "error: --images -2: the number of images cannot be negative; write 0 or more"),
    (["--images", "1", "--fps", "0"], "error: --fps 0: frames per second must be positive, e.g. 2"),
    (["--images", "1", "--budget", "-0.5"],
     "error: --budget -0.5: write a fraction in (0, 1] (e.g. 0.25) or a number of visual tokens kept (e.g. 144)"),
    (["--images", "1", "--budget", "5000"],
     "error: --budget 5000 keeps more visual tokens than the input has (2,116); write at most 2116 or a fraction "
     "such as 0.25"),
    (["--images", "1", "--gpus", "0"], "error: --gpus 0: write 1 or more GPUs"),
    (["--images", "1", "--dtype-bytes", "3"], "error: --dtype-bytes 3: write 1 (8-bit), 2 (FP16/BF16) or 4 (FP32)"),
])
def test_cost_user_errors(capsys, extra, message):
    assert one_line_error(capsys, main(["cost", "--model", "qwen2.5-vl-72b", *extra])) == message


def test_cost_memory_fit_and_context_warnings(capsys):
    assert main(["cost", "--model", "qwen2.5-vl-72b", "--images", "1"]) == 0
    err = capsys.readouterr().err
    assert err.strip() == ("warning: does not fit: the weights alone are 147 GB and NVIDIA A100 SXM4 80GB has 80 GB; "
                           "use more GPUs (--gpus N), a larger GPU or fewer bytes per weight (--dtype-bytes 1)")
    assert main(["cost", "--model", "qwen2.5-vl-72b", "--images", "1", "--gpus", "2"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "2 x NVIDIA A100 SXM4 80GB" in out
    assert main(["cost", "--model", "llava-1.5-7b", "--images", "1", "--text-tokens", "5000"]) == 0
    assert capsys.readouterr().err.strip() == (
        "warning: exceeds the context: 5,704 tokens (visual + text + output) > 4,096 tokens of LLaVA-1.5-7B; "
        "use fewer or smaller images, a shorter video or a visual-token budget")
    assert main(["cost", "--model", "qwen2.5-vl-72b", "--images", "1", "--gpus", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["full"]["gpus"] == 2 and doc["full"]["warnings"] == [] and doc["full"]["weight_bytes"] > 140e9


def test_ingest_days_must_be_positive(capsys):
    assert one_line_error(capsys, main(["ingest", "--days", "0"])) == "error: --days 0: write 1 or more days (e.g. --days 4)"

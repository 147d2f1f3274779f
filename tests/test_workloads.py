"""Workloads (scenario presets), multi-image prompts and batches of equal-length requests."""
from __future__ import annotations

import json

import pytest

from lvlm_atlas.methods import harness, registry, workloads
from tests.methods_util import bundle, inputs, noise_image

KV = ["snapkv", "pyramidkv", "streamingllm", "h2o", "look_m", "vl_cache", "kivi", "sparsemm"]


def test_every_workload_names_real_and_tiny_presets():
    from lvlm_atlas.methods.presets import PRESETS

    assert set(workloads.WORKLOADS) == {"single-image", "high-res", "multi-image", "video", "video-clip"}
    for w in workloads.WORKLOADS.values():
        assert w.model in PRESETS and w.tiny in PRESETS and w.model.endswith("@random")
    with pytest.raises(ValueError, match="write one of single-image"):
        workloads.get("nope")


@pytest.mark.parametrize("name", ["tiny-llava", "tiny-llava-next", "tiny-qwen2-vl"])
def test_multi_image_prompts_carry_every_images_tokens(name):
    b = bundle(name)
    one = inputs(b)
    three = b.inputs([noise_image(0), noise_image(1), noise_image(2)], "Describe the picture.")
    image_id = b.model.config.image_token_id
    n1 = int((one["input_ids"] == image_id).sum())
    assert int((three["input_ids"] == image_id).sum()) == 3 * n1
    b.model(**three)       # the model accepts them


@pytest.mark.parametrize("name", KV)
def test_kv_methods_run_batches_of_equal_requests_like_one(name):
    b = bundle("tiny-llava")
    kw = {} if name == "kivi" else {"budget": 0.25}
    if name in ("snapkv", "sparsemm"):
        kw["window"] = 8     # the official rule refuses a budget at or below the window
    with registry.create(name, **kw).apply(b.model):
        one = harness.greedy_generate(b.model, inputs(b), 5)
    with registry.create(name, **kw).apply(b.model):
        many = harness.greedy_generate(b.model, harness.batched(inputs(b), 3), 5)
    assert one.tokens == many.tokens


def test_bench_runs_a_workload_and_refuses_batches_for_batch_one_methods(tmp_path, capsys):
    from lvlm_atlas.cli import main

    out = tmp_path / "w.json"
    assert main(["bench", "--methods", "snapkv", "--workload", "multi-image", "--tiny", "--budgets", "0.25",
                 "--repeats", "1", "--warmup", "0", "--max-new-tokens", "3", "--batch", "2", "--no-progress",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {r["method"] for r in rows} == {"none", "snapkv"}
    assert all(r["workload"] == "multi-image" and r["batch"] == 2 for r in rows)
    assert rows[0]["visual_tokens_before"] == 8 * 64
    assert main(["bench", "--methods", "fastv", "--workload", "single-image", "--tiny", "--batch", "8",
                 "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --batch 8: fastv support(s) batch size 1 only")


def test_compiled_static_cache_decode_gives_the_eager_tokens():
    b = bundle("tiny-llava")
    eager = harness.greedy_generate(b.model, inputs(b), 6)
    # the "eager" torch.compile backend checks the static-cache path on CPU quickly; the GPU check uses inductor
    compiled = harness.greedy_generate(b.model, inputs(b), 6, compile="eager")
    assert compiled.tokens == eager.tokens


def test_bench_profile_pass_attributes_method_time_and_compile_marks_the_baseline(tmp_path):
    from lvlm_atlas.cli import main

    out = tmp_path / "p.json"
    assert main(["bench", "--methods", "snapkv", "--budgets", "0.5", "--n", "1", "--repeats", "1", "--warmup", "0",
                 "--max-new-tokens", "3", "--profile", "--compile", "eager", "--no-progress", "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["none"]["compile"] == "eager" and rows["snapkv"]["compile"] is None
    assert rows["none"]["profile"]["method_ms"] == 0 and rows["snapkv"]["profile"]["method_ms"] > 0
    assert 0 < rows["snapkv"]["profile"]["method_share"] < 1 and rows["snapkv"]["profile"]["top_ops"]


def test_video_clip_items_are_videos_with_a_moving_square():
    w = workloads.get("video-clip")
    (item,) = workloads.items(w, tiny=True)
    assert "images" not in item and len(item["video"]) == workloads.TINY_VIDEO_FRAMES
    import numpy as np
    a, b = (np.asarray(f, dtype=np.int16) for f in item["video"][:2])
    changed = (a != b).any(axis=2).mean()
    assert 0 < changed < 0.5          # most of the frame repeats, a small part moves
    (big,) = workloads.items(w)
    assert len(big["video"]) == 32 and big["video"][0].size == (448, 448)


def test_bench_runs_video_methods_on_the_video_clip_workload(tmp_path, capsys):
    from lvlm_atlas.cli import main

    out = tmp_path / "v.json"
    assert main(["bench", "--methods", "fastvid,dycoke", "--workload", "video-clip", "--tiny", "--repeats", "1",
                 "--warmup", "0", "--max-new-tokens", "3", "--no-progress", "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    # 8 frames of 112 px -> 4 temporal slices x 4 x 4 merged patches on tiny-qwen2-vl
    assert rows["none"]["visual_tokens_before"] == rows["none"]["visual_tokens_after"] == 128
    assert rows["fastvid"]["visual_tokens_before"] == 128 and rows["fastvid"]["visual_tokens_after"] < 128
    assert rows["dycoke"]["visual_tokens_after"] < 128
    assert "not below the" not in capsys.readouterr().err     # no image-size budget warnings for a video


@pytest.mark.parametrize("argv,message", [
    (["--methods", "fastvid", "--workload", "single-image", "--tiny"],
     "error: fastvid needs video input; add --workload video-clip"),
    (["--methods", "fastvid", "--workload", "video-clip", "--models", "tiny-llava"],
     "error: --workload video-clip feeds video, which only Qwen2-VL / Qwen2.5-VL models take; drop tiny-llava"),
    (["--methods", "dycoke", "--workload", "video-clip", "--tiny", "--batch", "2"],
     "error: --batch 2: the video-clip workload runs one video per request; drop --batch"),
])
def test_video_workload_errors_are_one_line_before_any_model_loads(tmp_path, capsys, argv, message):
    from lvlm_atlas.cli import main

    assert main(["bench", *argv, "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)

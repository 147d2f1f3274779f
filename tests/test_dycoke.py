"""Video input (PyAV, Qwen2-VL temporal patches) and DyCoke (temporal token merging + dynamic KV pruning)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")
pytest.importorskip("av")

from lvlm_atlas.methods import harness, registry, video  # noqa: E402
from lvlm_atlas.methods.algorithms.dycoke import ttm_keep  # noqa: E402
from tests.methods_util import bundle, decoder_inputs, noise_image  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return video.write_test_video(tmp_path_factory.mktemp("video") / "clip.mp4", num_frames=8)


def _inputs(name, clip, frames=8):
    b = bundle(name)
    return b, video.video_inputs(b, video.read_frames(clip, frames), "What moves?")


def test_frames_are_packed_into_temporal_patches():
    b = bundle("tiny-qwen2-vl")
    a, c = noise_image(1, (224, 112)), noise_image(2, (224, 112))
    px, thw = video._pack_frames(b, [a, a, c, c])
    img_a = b.image_processor(images=a, return_tensors="pt")
    img_c = b.image_processor(images=c, return_tensors="pt")
    n = img_a["pixel_values"].shape[0]
    assert thw.tolist() == [[2, int(img_a["image_grid_thw"][0, 1]), int(img_a["image_grid_thw"][0, 2])]]
    # a still pair is exactly what the image processor makes of one image (it repeats the frame in time)
    torch.testing.assert_close(px[:n], img_a["pixel_values"])
    torch.testing.assert_close(px[n:], img_c["pixel_values"])


@pytest.mark.parametrize("name", ["tiny-qwen2-vl", "tiny-qwen2.5-vl"])
def test_video_requests_run_with_video_tokens(name, clip):
    b, inp = _inputs(name, clip)
    ids = inp["input_ids"]
    assert int((ids == b.model.config.video_token_id).sum()) == 4 * 32 and inp["video_grid_thw"].tolist() == [[4, 8, 16]]
    res = harness.greedy_generate(b.model, inp, 3, None)
    assert len(res.tokens) == 3


def _official_ttm(frames, k, keep_last_odd_frame):
    """The official dycole_ttm rule as loops (kept index sets per frame)."""
    t, n, _ = frames.shape
    keep_n = int((1 - k) * n)
    kept = {}
    for i in range(0, t - 1, 2):
        sim = [float(F.cosine_similarity(frames[i, j], frames[i + 1, j], dim=0)) for j in range(n)]
        kept[i] = set(range(n))
        kept[i + 1] = set(sorted(range(n), key=lambda j: sim[j])[:keep_n])
    for i in range(0, t - 4, 4):
        sim = [float(F.cosine_similarity(frames[i, j], frames[i + 2, j], dim=0)) for j in range(n)]
        kept[i + 2] = set(sorted(range(n), key=lambda j: sim[j])[:keep_n])
    if t % 2 and keep_last_odd_frame:
        kept[t - 1] = set(range(n))
    return sorted(f * n + j for f, js in kept.items() for j in js)


@pytest.mark.parametrize("t,keep_odd", [(4, True), (6, True), (9, False), (9, True), (12, True)])
def test_temporal_merging_matches_the_official_rule(t, keep_odd):
    g = torch.Generator().manual_seed(t)
    frames = torch.randn(t, 20, 8, generator=g)
    assert ttm_keep(frames, 0.3, keep_odd).tolist() == _official_ttm(frames, 0.3, keep_odd)


def test_zero_ratios_are_the_baseline(clip):
    b, inp = _inputs("tiny-qwen2-vl", clip)
    base = harness.greedy_generate(b.model, inp, 6, None)
    with registry.create("dycoke", k=0.0, p=0.0).apply(b.model) as s:
        res = harness.greedy_generate(b.model, inp, 6, None)
    assert res.tokens == base.tokens and s.last.visual_after == s.last.visual_before == 128


def test_temporal_merging_keeps_positions_and_equals_a_pruned_forward(clip):
    b, inp = _inputs("tiny-qwen2-vl", clip)
    model = b.model
    E, P = decoder_inputs(model, inp)
    m = registry.create("dycoke", p=0.0)
    with m.apply(model) as s:
        out = model(**inp).logits[0, -1]
    assert s.last.visual_after == 32 + 22 + 32 + 22 == m.report["visual_tokens_after_ttm"]
    ids = inp["input_ids"][0]
    vid = (ids == model.config.video_token_id).nonzero().squeeze(1)
    frames = E[0, vid].reshape(4, 32, -1)
    keep = torch.ones(ids.numel(), dtype=torch.bool)
    keep[vid] = False
    keep[vid[ttm_keep(frames, 0.3)]] = True
    seq = keep.nonzero().squeeze(1)
    want = model(inputs_embeds=E[:, seq], position_ids=P[..., seq]).logits[0, -1]
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_dynamic_pruning_attends_to_the_top_share_and_keeps_the_cache(clip):
    b, inp = _inputs("tiny-qwen2-vl", clip)
    m = registry.create("dycoke", k=0.0, p=0.8)
    with m.apply(b.model) as s:
        res = harness.greedy_generate(b.model, inp, 6, None)
    assert len(res.tokens) == 6
    r = m.report
    assert r["decode_steps"] == 5 and r["reselections"] >= 1
    assert r["mean_visual_kv_attended"] == int(128 * 0.2) and r["visual_kv_in_cache"] == 128
    assert res.kv_cache_bytes > 0
    m2 = registry.create("dycoke", k=0.0, p=0.8, reuse_selection=False, threshold=-1.0)
    with m2.apply(b.model):
        harness.greedy_generate(b.model, inp, 6, None)
    # threshold -1: the attention never "changes" after the first step; the official reset attends to all
    assert m2.report["reselections"] == 1 and m2.report["mean_visual_kv_attended"] == (25 + 4 * 128) / 5


def test_dycoke_rejects_llava_and_budgets():
    with pytest.raises(ValueError, match="budget"):
        registry.create("dycoke", budget=8)
    with pytest.raises(NotImplementedError, match="Qwen2-VL"):
        with registry.create("dycoke").apply(bundle("tiny-llava").model):
            pass


def test_cli_run_with_a_video(clip, capsys):
    from lvlm_atlas.__main__ import main

    assert main(["run", "dycoke", "--model", "tiny-qwen2-vl", "--video", str(clip), "--prompt", "What moves?",
                 "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "visual tokens: 128 -> 108" in out and "reselections" in out
    assert main(["run", "none", "--model", "tiny-qwen2-vl", "--prompt", "x"]) == 2
    assert main(["run", "none", "--model", "tiny-llava", "--video", str(clip), "--prompt", "x"]) == 2

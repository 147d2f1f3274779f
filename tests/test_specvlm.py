"""SpecVLM speculative decoding on the tiny presets (CPU): lossless strict verification, acceptance counts,
relaxed policies, and cache rollback (a cached continuation equals a recompute)."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from lvlm_atlas.methods import harness, registry  # noqa: E402
from lvlm_atlas.methods.algorithms.specvlm import (RELAXABLE_FILE, load_relaxable, relaxable_ids,  # noqa: E402
                                                   two_stage_keep)
from lvlm_atlas.methods.speculative import speculative_generate  # noqa: E402
from lvlm_atlas.methods.transformers_adapter import ModelAdapter, cache_kwargs  # noqa: E402
from tests.methods_util import bundle, inputs, noise_image  # noqa: E402

PROMPTS = ["Describe the picture.", "What is in the image?", "Count the objects, please."]


def _spec(b, inp, max_new=12, **params):
    m = registry.create("specvlm", **params)
    with m.apply(b.model) as s:
        res = harness.generate(b.model, inp, max_new, None, method=m, session=s, decode=b.decode)
    return res, s


@pytest.mark.parametrize("model_name", ["tiny-llava", "tiny-qwen2-vl", "tiny-llava-next"])
def test_strict_verification_is_lossless(model_name):
    b = bundle(model_name)
    for i, prompt in enumerate(PROMPTS):
        inp = b.inputs(noise_image(i), prompt)
        base = harness.greedy_generate(b.model, inp, 14, None)
        for gamma in (3, 10):
            res, s = _spec(b, inp, 14, gamma=gamma, compare=False)
            assert res.tokens == base.tokens, (prompt, gamma)
        assert s.speculative["draft_visual_tokens"] < s.speculative["target_visual_tokens"]


def test_a_different_draft_model_is_still_lossless():
    b = bundle("tiny-llava")
    inp = inputs(b)
    other = bundle("tiny-llava", dtype="float32", attn="eager").model   # same weights (seed 0), eager attention
    base = harness.greedy_generate(b.model, inp, 10, None)
    m = registry.create("specvlm", gamma=4, compare=False)
    m._draft_model = other
    with m.apply(b.model) as s:
        res = harness.generate(b.model, inp, 10, None, method=m, session=s)
    assert res.tokens == base.tokens
    assert s.speculative["draft_visual_tokens"] == 6


@pytest.mark.parametrize("model_name", ["tiny-llava", "tiny-qwen2-vl"])
def test_unpruned_self_draft_accepts_every_token(model_name):
    b = bundle(model_name)
    gamma = 4
    res, s = _spec(b, inputs(b), 1 + 3 * (gamma + 1), budget=1.0, gamma=gamma)
    spec = s.speculative
    assert spec["rounds"] == 3 and spec["mean_accepted_length"] == gamma + 1
    assert spec["acceptance_rate"] == 1.0 and spec["draft_visual_tokens"] == spec["target_visual_tokens"]
    assert spec["identical_to_target"] and spec["token_agreement"] == 1.0
    assert spec["speedup"] is not None and spec["draft_ms"] > 0 and spec["verify_ms"] > 0


def test_random_verification_with_p_one_accepts_every_draft_token_and_p_zero_is_strict():
    b = bundle("tiny-llava")
    inp = inputs(b)
    gamma = 3
    res, s = _spec(b, inp, 1 + 4 * (gamma + 1), verify="random", p=1.0, gamma=gamma)
    spec = s.speculative
    assert spec["acceptance_rate"] == 1.0 and spec["mean_accepted_length"] == gamma + 1
    assert spec["relaxed_accepts"] > 0            # the pruned draft disagrees, yet everything was accepted
    strict, _ = _spec(b, inp, 12, gamma=gamma, compare=False)
    zero, _ = _spec(b, inp, 12, verify="random", p=0.0, gamma=gamma, compare=False)
    assert zero.tokens == strict.tokens


@pytest.mark.parametrize("verify,params", [("strict", {}), ("random", {"p": 1.0}), ("random", {"p": 0.5})])
def test_target_cache_holds_only_accepted_tokens(verify, params):
    """After a run, continuing from the target cache equals recomputing the whole sequence without one."""
    b = bundle("tiny-llava")
    model = b.model
    inp = inputs(b)
    m = registry.create("specvlm", gamma=4, verify=verify, **params)
    res = speculative_generate(model, inp, gamma=4, keep_fn=m.keep_sequence,
                               accept=m._accept_fn(b.decode, 320), max_new_tokens=15, device="cpu",
                               keep_caches=True)
    tcache, dcache = res.extra["caches"]
    prompt_len = inp["input_ids"].shape[1]
    assert tcache.get_seq_length() == prompt_len + len(res.tokens) - 1
    assert dcache.get_seq_length() < tcache.get_seq_length()        # the draft's prompt was pruned
    pos = res.extra["positions"](len(res.tokens) - 1, 1)
    cached = model(input_ids=torch.tensor([[res.tokens[-1]]]), position_ids=pos, **cache_kwargs(model, tcache),
                   use_cache=True).logits[0, -1]
    full = dict(inp)
    full["input_ids"] = torch.cat([inp["input_ids"], torch.tensor([res.tokens])], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    recomputed = model(**full).logits[0, -1]
    torch.testing.assert_close(cached, recomputed, atol=1e-4, rtol=1e-4)


def test_draft_cache_rollback_matches_a_fresh_draft_prefill():
    """The draft cache after a run equals prefilling the pruned prompt + the accepted tokens it has seen."""
    b = bundle("tiny-llava")
    model = b.model
    inp = inputs(b)
    m = registry.create("specvlm", gamma=3)
    res = speculative_generate(model, inp, gamma=3, keep_fn=m.keep_sequence, max_new_tokens=13, keep_caches=True)
    _, dcache = res.extra["caches"]
    keep_len = dcache.get_seq_length()
    n_prompt_kept = int(ModelAdapter.of(model).layout(inp["input_ids"], {}).text_index.numel()) + 6
    seen = keep_len - n_prompt_kept
    assert 0 < seen <= len(res.tokens)
    # continuing the draft cache with the next unseen token gives what a recompute gives
    from lvlm_atlas.methods.speculative import _capture_prefill

    got, hs = _capture_prefill(model, True)
    model(**inp)
    for h in hs:
        h.remove()
    from lvlm_atlas.methods.speculative import PrefillCapture

    cap = PrefillCapture(input_ids=inp["input_ids"], inputs_embeds=got["embeds"],
                         position_ids=torch.arange(got["embeds"].shape[1])[None], attn_inputs=got["attn"],
                         adapter=ModelAdapter.of(model))
    keep = m.keep_sequence(cap)
    emb = model.get_input_embeddings()(torch.tensor([res.tokens[:seen + 1]]))
    L = inp["input_ids"].shape[1]
    full_emb = torch.cat([got["embeds"][:, keep], emb], dim=1)
    full_pos = torch.cat([keep, torch.arange(L, L + seen + 1)])[None]
    recomputed = model(inputs_embeds=full_emb, position_ids=full_pos).logits[0, -1]
    pos = res.extra["positions"](seen, 1)
    cached = model(input_ids=torch.tensor([[res.tokens[seen]]]), position_ids=pos, **cache_kwargs(model, dcache),
                   use_cache=True).logits[0, -1]
    torch.testing.assert_close(cached, recomputed, atol=1e-4, rtol=1e-4)


def test_two_stage_selection():
    scores = torch.tensor([0.0, 10.0, 0.1, 0.2, 5.0, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert two_stage_keep(scores, 3, None).tolist() == [1, 4, 9]              # pure ranking
    # 40% of the mass (total 17.8) is covered by the top token alone; the other 3 are spread uniformly
    keep = two_stage_keep(scores, 4, 0.4).tolist()
    rest = [0, 2, 3, 4, 5, 6, 7, 8, 9]
    assert 1 in keep and sorted(set(keep) - {1}) == sorted({rest[0], rest[4], rest[8]})
    assert two_stage_keep(scores, 1, 0.99).tolist() == [1]                   # stage I is capped at the budget


def test_lexical_policy_relaxes_only_function_words_and_punctuation(tmp_path):
    b = bundle("tiny-llava")
    words = load_relaxable(str(RELAXABLE_FILE))
    assert {"the", "of", ",", "."} <= words and "cat" not in words
    mask = relaxable_ids(b.decode, 320, words)
    enc = lambda ch: b.tokenizer.encode(ch, add_bos=False)[0]  # noqa: E731
    assert mask[enc(".")] and mask[enc(" ")] and mask[enc(",")]
    assert not mask[enc("x")] and not mask[enc("7")] and not mask[b.tokenizer.eos_token_id]
    m = registry.create("specvlm", verify="lexical")
    acc = m._accept_fn(b.decode, 320)
    assert acc(enc("."), enc(","), None) and not acc(enc("x"), enc(","), None) and not acc(enc("."), enc("x"), None)
    custom = tmp_path / "words.txt"
    custom.write_text("# only a full stop\n.\n")
    m2 = registry.create("specvlm", verify="lexical", relaxable=str(custom))
    acc2 = m2._accept_fn(b.decode, 320)
    assert acc2(enc("."), enc(" "), None) and not acc2(enc("."), enc(","), None)
    inp = inputs(b)
    res, s = _spec(b, inp, 12, verify="lexical", gamma=3)
    assert len(res.tokens) == 12 and s.speculative["rounds"] > 0


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="verify"):
        registry.create("specvlm", verify="fuzzy")
    with pytest.raises(ValueError, match="p must"):
        registry.create("specvlm", p=1.5)


def test_cli_run_and_bench(tmp_path, capsys):
    from lvlm_atlas.__main__ import main

    img = tmp_path / "x.png"
    noise_image(0).save(img)
    assert main(["run", "specvlm", "--model", "tiny-llava", "--image", str(img), "--prompt", "What is it?",
                 "--max-new-tokens", "6", "--param", "gamma=2"]) == 0
    out = capsys.readouterr().out
    assert "speculative: mean accepted length" in out and "draft saw 6/64 visual tokens" in out
    res = tmp_path / "r.json"
    assert main(["bench", "--methods", "specvlm", "--models", "tiny-llava", "--budgets", "0.1", "--n", "1",
                 "--repeats", "1", "--warmup", "0", "--max-new-tokens", "4", "--param", "specvlm.gamma=2",
                 "--out", str(res), "--no-progress"]) == 0
    rows = json.loads(res.read_text())["results"]
    spec = rows[1]
    assert spec["method"] == "specvlm" and spec["greedy_match"] == 1.0
    assert spec["speculative"]["draft_visual_tokens"] == 6 and spec["speculative"]["mean_accepted_length"] >= 1


def test_strict_is_lossless_on_video_tokens(tmp_path):
    pytest.importorskip("av")
    from lvlm_atlas.methods import video

    b = bundle("tiny-qwen2-vl")
    clip = video.write_test_video(tmp_path / "c.mp4", num_frames=8)
    inp = video.video_inputs(b, video.read_frames(clip, 8), "What moves?")
    base = harness.greedy_generate(b.model, inp, 12, None)
    res, s = _spec(b, inp, 12, gamma=3)
    assert res.tokens == base.tokens
    assert s.speculative["target_visual_tokens"] == 128 and s.speculative["draft_visual_tokens"] == 12

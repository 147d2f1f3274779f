"""Correctness of the method framework and every registered method on the tiny LLaVA / LLaVA-NeXT / Qwen2-VL."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from lvlm_atlas.methods import harness, registry  # noqa: E402
from lvlm_atlas.methods.stages import Stage  # noqa: E402
from lvlm_atlas.methods.transformers_adapter import cache_kwargs  # noqa: E402
from tests.methods_util import TINY, bundle, hook_count, inputs  # noqa: E402

# token-compression methods; the KV-cache methods (stage kv) are tested in tests/test_kv_methods.py
# the visual-token methods of this framework (kv / cache / decode methods have their own tests)
METHODS = [m for m in registry.names() if registry.get(m).stage in (Stage.VISION, Stage.PRE_LLM, Stage.IN_LLM)
           and getattr(registry.get(m), "budget_driven", True)]   # tome / dycoke are set by ratios, not a budget
BUDGET = 8


def first_budget_count(stats) -> int:
    if stats.visual_per_layer:
        return stats.visual_per_layer[min(stats.visual_per_layer)]
    return stats.visual_after


@pytest.mark.parametrize("model_name", TINY)
@pytest.mark.parametrize("method", METHODS)
def test_noop_budget_gives_baseline_logits_exactly(model_name, method):
    b = bundle(model_name)
    inp = inputs(b)
    base = b.model(**inp).logits
    with registry.create(method, budget=1.0).apply(b.model) as s:
        out = b.model(**inp).logits
    assert torch.equal(out, base)
    assert s.last.visual_after == s.last.visual_before > 0


@pytest.mark.parametrize("model_name", TINY)
@pytest.mark.parametrize("method", METHODS)
def test_kept_count_equals_budget_and_sequence_is_shorter(model_name, method):
    b = bundle(model_name)
    inp = inputs(b)
    m = registry.create(method, budget=BUDGET)
    seen = []
    h = b.model.model.language_model.norm.register_forward_pre_hook(lambda mod, a: seen.append(a[0].shape[1]))
    try:
        with m.apply(b.model) as s:
            r = harness.greedy_generate(b.model, inp, max_new_tokens=3)
    finally:
        h.remove()
    n = s.last.visual_before
    # in-LLM methods keep what their first stage's count says (= the budget, except SparseVLM, whose
    # official recycling adds cluster tokens to the top-k)
    expected = m.keep_at(0, n, n) if m.stage == Stage.IN_LLM else BUDGET
    assert first_budget_count(s.last) == expected
    assert len(r.tokens) == 3
    L = inp["input_ids"].shape[1]
    # physically shorter after the last layer during prefill: the dropped visual tokens are gone
    assert seen[0] == L - (s.last.visual_before - s.last.visual_after)
    assert s.last.visual_after <= expected


@pytest.mark.parametrize("method", METHODS)
def test_hooks_removed_after_context_and_on_exception(method):
    b = bundle("tiny-llava")
    before = hook_count(b.model)
    with registry.create(method, budget=BUDGET).apply(b.model) as s:
        assert hook_count(b.model) > before
        b.model(**inputs(b))
    assert hook_count(b.model) == before
    with pytest.raises(RuntimeError, match="boom"):
        with registry.create(method, budget=BUDGET).apply(b.model):
            raise RuntimeError("boom")
    assert hook_count(b.model) == before
    del s


@pytest.mark.parametrize("model_name", ["tiny-llava", "tiny-qwen2-vl"])
@pytest.mark.parametrize("method", METHODS)
def test_same_tokens_selected_under_eager_and_sdpa(model_name, method):
    kept = {}
    for attn in ("sdpa", "eager"):
        b = bundle(model_name, attn=attn)
        with registry.create(method, budget=BUDGET).apply(b.model) as s:
            b.model(**inputs(b))
        kept[attn] = {k: v.tolist() for k, v in s.last.kept.items()}
    assert kept["sdpa"] == kept["eager"]
    assert kept["sdpa"]


def _cached_greedy(model, inp, n_new):
    """Prefill + cached greedy decode, returning tokens and each step's last-position logits."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config.get_text_config())
    out = model(**inp, **cache_kwargs(model, cache), use_cache=True)
    logits = [out.logits[0, -1]]
    tokens = [int(logits[-1].argmax())]
    for _ in range(n_new - 1):
        out = model(input_ids=torch.tensor([[tokens[-1]]]), **cache_kwargs(model, cache), use_cache=True)
        logits.append(out.logits[0, -1])
        tokens.append(int(logits[-1].argmax()))
    return tokens, logits


CACHED_CASES = [(m, name, "sdpa") for name in TINY for m in METHODS] + [
    (m, name, "eager") for name in ("tiny-llava", "tiny-qwen2-vl") for m in ("fastv", "pyramiddrop", "divprune")]


@pytest.mark.parametrize("method,model_name,attn", CACHED_CASES)
def test_cached_decoding_matches_recomputing_the_pruned_sequence(method, model_name, attn):
    b = bundle(model_name, attn=attn, dtype="float64")
    inp = inputs(b)
    n_new = 4
    with registry.create(method, budget=BUDGET).apply(b.model) as s:
        tokens, logits = _cached_greedy(b.model, inp, n_new)
        assert s.last.visual_after < s.last.visual_before
        s.freeze()   # selection frozen at prefill, replayed on the longer sequence without a cache
        ids = inp["input_ids"]
        for i in range(1, n_new):
            full = torch.cat([ids, torch.tensor([tokens[:i]])], dim=1)
            kw = dict(inp, input_ids=full, attention_mask=torch.ones_like(full))
            if "mm_token_type_ids" in kw:
                kw["mm_token_type_ids"] = torch.cat([inp["mm_token_type_ids"], torch.zeros(1, i, dtype=torch.int32)], 1)
            ref = b.model(**kw, use_cache=False).logits[0, -1]
            assert int(ref.argmax()) == tokens[i], f"step {i}"
            torch.testing.assert_close(logits[i], ref, rtol=1e-9, atol=1e-9)


def _eager_attentions(b, inp):
    out = b.model(**inp, output_attentions=True)
    return out.attentions


def _visual_positions(b, inp):
    return (inp["input_ids"][0] == b.model.config.image_token_id).nonzero().squeeze(1)


@pytest.mark.parametrize("model_name", ["tiny-llava", "tiny-qwen2-vl"])
@pytest.mark.parametrize("method,kw", [("fastv", {}), ("pyramiddrop", {"score_layer": "previous"})])
def test_last_token_attention_methods_keep_naive_eager_top_tokens(model_name, method, kw):
    # the previous layer's attention (FastV's rule; PyramidDrop's non-official variant -- its official
    # rule, the boundary layer's own attention, is checked in tests/test_methods_fidelity.py)
    b = bundle(model_name, attn="eager")
    inp = inputs(b)
    vis = _visual_positions(b, inp)
    m = registry.create(method, budget=BUDGET, **kw)
    layer = m.prune_layers(len(b.model.model.language_model.layers))[0]
    att = _eager_attentions(b, inp)[layer - 1][0]            # (heads, L, L) of the layer before pruning
    expected = vis[att[:, -1, vis].mean(0).topk(BUDGET).indices].sort().values
    bs = bundle(model_name)                                   # the method itself runs on SDPA
    with m.apply(bs.model) as s:
        bs.model(**inputs(bs))
    assert s.last.kept[f"layer{layer}"].tolist() == expected.tolist()


def test_visionzip_dominant_tokens_are_the_naive_cls_attention_top():
    b = bundle("tiny-llava", attn="eager")
    inp = inputs(b)
    vt = b.model.model.vision_tower
    out = vt(inp["pixel_values"], output_attentions=True)
    fl = b.model.config.vision_feature_layer
    layer = len(vt.encoder.layers) + fl if fl < 0 else fl - 1
    cls = out.attentions[layer][0, :, 0, 1:].mean(0)             # CLS -> patches, heads averaged
    m = registry.create("visionzip", budget=BUDGET)
    n_ctx = round(BUDGET * m.contextual_ratio)
    dominant = set(cls.topk(BUDGET - n_ctx - 1).indices.tolist())   # the CLS token is the other dominant one
    vis = _visual_positions(b, inp)
    bs = bundle("tiny-llava")
    with m.apply(bs.model) as s:
        bs.model(**inputs(bs))
    kept_local = {int((vis == p).nonzero()) for p in s.last.kept["pre_llm"].tolist()}
    assert dominant <= kept_local and len(kept_local) == BUDGET


@pytest.mark.parametrize("method", [m for m in METHODS if registry.get(m).stage.prunes_before_llm])
def test_qwen_kept_tokens_keep_their_3d_mrope_positions(method):
    b = bundle("tiny-qwen2-vl")
    inp = inputs(b)
    captured = []

    def grab(mod, a, kw):
        captured.append(kw["position_ids"].clone())

    lm = b.model.model.language_model
    h = lm.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        b.model(**inp)
        base_pos = captured.pop()
        with registry.create(method, budget=BUDGET).apply(b.model) as s:
            h.remove()
            h = lm.register_forward_pre_hook(grab, with_kwargs=True)   # runs after the method's hook
            b.model(**inp)
    finally:
        h.remove()
    pos = captured.pop()
    L = inp["input_ids"].shape[1]
    text = torch.tensor([i for i in range(L) if int(inp["input_ids"][0, i]) != b.model.config.image_token_id])
    keep = torch.sort(torch.cat([text, s.last.kept["pre_llm"]])).values
    assert base_pos.shape[-1] == L and pos.shape[-1] == keep.numel()
    assert torch.equal(pos, base_pos[..., keep])
    assert base_pos.dim() == 3 and not torch.equal(base_pos[1], base_pos[2])   # really 3-D M-RoPE


def test_unsupported_batch_and_embeds_inputs_fail_clearly():
    b = bundle("tiny-llava")
    inp = inputs(b)
    two = {k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in inp.items()}
    with registry.create("fastv", budget=BUDGET).apply(b.model):
        with pytest.raises(NotImplementedError, match="batch size 1"):
            b.model(**two)
        embeds = b.model.get_input_embeddings()(inp["input_ids"])
        with pytest.raises(ValueError, match="input_ids"):
            b.model(inputs_embeds=embeds, attention_mask=inp["attention_mask"])


def test_in_llm_layer_out_of_range_is_rejected_and_leaves_no_hooks():
    b = bundle("tiny-llava")
    before = hook_count(b.model)
    with pytest.raises(ValueError, match="pruning layers"):
        with registry.create("fastv", k=99).apply(b.model):
            pass
    assert hook_count(b.model) == before


def test_stage_declarations():
    stages = {m: registry.get(m).stage for m in METHODS}
    assert stages["fastv"] == Stage.IN_LLM and stages["visionzip"] == Stage.VISION
    assert {s.value for s in Stage} == {"vision", "pre_llm", "in_llm", "kv", "decode"}


def test_qwen2_5_window_order_is_undone_for_vision_signals():
    from lvlm_atlas.methods.transformers_adapter import ModelAdapter
    from lvlm_atlas.methods.vision_signals import window_to_token_order

    b = bundle("tiny-qwen2.5-vl")
    inp = inputs(b)
    a = ModelAdapter.of(b.model)
    got = {}
    def block_out(module, args, out):
        got["blk"] = out

    def lm_in(module, args, kwargs):
        got["emb"] = kwargs["inputs_embeds"]

    h1 = a.vision_tower.blocks[-1].register_forward_hook(block_out)
    h2 = a.language_model.register_forward_pre_hook(lm_in, with_kwargs=True)
    try:
        b.model(**inp)
    finally:
        h1.remove()
        h2.remove()
    window_order_tokens = a.projector(got["blk"])                  # merged tokens, still in window order
    order = window_to_token_order(a, inp["image_grid_thw"])
    assert not torch.equal(order, torch.arange(order.numel()))    # the tiny config really permutes
    vis = _visual_positions(b, inp)
    torch.testing.assert_close(window_order_tokens[order], got["emb"][0, vis])


@pytest.mark.parametrize("model_name", ["tiny-llava", "tiny-qwen2-vl"])
@pytest.mark.parametrize("method", ["random", "visionzip", "fastv", "pyramiddrop"])
def test_transformers_generate_under_a_method_matches_the_harness(model_name, method):
    b = bundle(model_name, dtype="float64")
    inp = inputs(b)
    with registry.create(method, budget=BUDGET).apply(b.model) as s:
        ours = harness.greedy_generate(b.model, inp, max_new_tokens=4)
        hf = b.model.generate(**inp, max_new_tokens=4, do_sample=False, min_new_tokens=4)
        assert s.last.visual_after < s.last.visual_before
    assert hf[0, inp["input_ids"].shape[1]:].tolist() == ours.tokens

"""KV-cache methods on tiny random-weight LLaVA and Qwen2-VL models (seconds on CPU)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lvlm_atlas.methods.algorithms.h2o import H2O  # noqa: E402
from lvlm_atlas.methods.algorithms.kivi import KIVI  # noqa: E402
from lvlm_atlas.methods.algorithms.look_m import LookM  # noqa: E402
from lvlm_atlas.methods.algorithms.pyramidkv import PyramidKV  # noqa: E402
from lvlm_atlas.methods.algorithms.snapkv import SnapKV  # noqa: E402
from lvlm_atlas.methods.algorithms.streamingllm import StreamingLLM  # noqa: E402
from lvlm_atlas.methods.algorithms.vl_cache import VLCache  # noqa: E402
from lvlm_atlas.methods.budget import resolve_budget  # noqa: E402
from lvlm_atlas.methods.kv.evict import group_scores  # noqa: E402
from lvlm_atlas.methods.kv.layers import EvictableLayer, QuantizedEvictableLayer, cache_nbytes  # noqa: E402
from lvlm_atlas.methods.transformers_adapter import cache_kwargs, output_cache  # noqa: E402

NEW = 6
PRESETS = {"llava": "tiny-llava", "qwen2_vl": "tiny-qwen2-vl"}


def _model_and_inputs(name: str, attn: str = "sdpa"):
    from tests.methods_util import bundle, inputs

    b = bundle(PRESETS[name], attn=attn)
    return b.model, inputs(b)


@pytest.fixture(scope="module", params=sorted(PRESETS))
def tiny(request):
    model, inputs = _model_and_inputs(request.param)
    with torch.no_grad():
        base = model.generate(**inputs, max_new_tokens=NEW, do_sample=False, output_scores=True,
                              return_dict_in_generate=True)
    return request.param, model, inputs, base


def image_id(model) -> int:
    return int(model.config.image_token_id)


def run(method, model, inputs, new=NEW):
    with method.apply(model), torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=new, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
    return out, method.kv.cache


ALL = [
    lambda b: StreamingLLM(budget=b),
    lambda b: H2O(budget=b),
    lambda b: SnapKV(budget=b, window=8),
    lambda b: PyramidKV(budget=b, window=8),
    lambda b: LookM(budget=b),
    lambda b: VLCache(budget=b),
]
IDS = ["streamingllm", "h2o", "snapkv", "pyramidkv", "look_m", "vl_cache"]


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_budget_one_equals_baseline_exactly(tiny, make):
    _, model, inputs, base = tiny
    out, cache = run(make(1.0), model, inputs)
    assert torch.equal(out.sequences, base.sequences)
    for a, b in zip(out.scores, base.scores):
        assert torch.equal(a, b)
    n = inputs["input_ids"].shape[1]
    assert all(isinstance(l, EvictableLayer) and l.held == n + NEW - 1 for l in cache.layers)


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_budget_respected_per_layer_and_head(tiny, make):
    name, model, inputs, base = tiny
    method = make(0.25)
    out, cache = run(method, model, inputs)
    n = inputs["input_ids"].shape[1]
    cap = resolve_budget(0.25, n)
    held = [l.held for l in cache.layers]
    decode_time = type(method).decode_time
    if isinstance(method, PyramidKV):
        # the official layer budgets (integer step: the total is at least the uniform one)
        want = method.layer_budgets(cap, n, len(held))
        assert held == [b + NEW - 1 for b in want] and sum(want) >= len(held) * cap
        assert held == sorted(held, reverse=True) and held[0] > held[-1]
    elif isinstance(method, VLCache):
        # uneven layer budgets, same total; the last NEW - 1 generated entries come on top
        assert sum(held) == len(held) * (cap + NEW - 1)
    elif decode_time:  # a fraction of the tokens seen so far
        assert held == [resolve_budget(0.25, n + NEW - 1)] * len(held)
    else:
        assert held == [cap + NEW - 1] * len(held)
    for layer in cache.layers:
        # every head holds the same number of distinct, increasing original positions
        pos = layer.positions
        assert pos.shape == layer.keys.shape[:3] == layer.values.shape[:3]
        assert torch.all(pos[..., 1:] > pos[..., :-1])
        assert int(pos.max()) == n + NEW - 2  # the newest token is always held
    # the cache still reports every token seen, so new tokens get the right positions
    assert cache.get_seq_length() == n + NEW - 1
    assert out.sequences.shape == base.sequences.shape
    assert torch.equal(out.sequences[0, n], base.sequences[0, n])  # the prefill itself sees the full prompt


def test_streamingllm_keeps_sinks_and_recent_window(tiny):
    _, model, inputs, _ = tiny
    n = inputs["input_ids"].shape[1]
    out, cache = run(StreamingLLM(budget=20, sinks=4), model, inputs)
    seen = n + NEW - 1
    for layer in cache.layers:
        assert layer.positions[0, 0].tolist() == [0, 1, 2, 3] + list(range(seen - 16, seen))


def test_decoding_continues_like_a_masked_full_cache(tiny):
    """After eviction, the next step must equal a full-cache step that masks the evicted entries
    (same rotary positions, same mask alignment)."""
    name, model, inputs, _ = tiny
    n = inputs["input_ids"].shape[1]
    method = StreamingLLM(budget=30, sinks=4)
    with torch.no_grad():
        with method.apply(model):
            first = model(**inputs, use_cache=True)
            cache = output_cache(first)
            tok = first.logits[:, -1:].argmax(-1)
            step_inputs = dict(input_ids=tok, attention_mask=torch.ones(1, n + 1, dtype=torch.long),
                               **cache_kwargs(model, cache))
            if name == "qwen2_vl":
                # a direct call (unlike generate) would derive M-RoPE ids for the whole mask: give them
                step_inputs["mm_token_type_ids"] = torch.zeros(1, 1, dtype=torch.int32)
                step_inputs["position_ids"] = (torch.tensor([[n]]) + model.model.rope_deltas).expand(3, 1, 1)
            second = model(**step_inputs)
        # the step attended 4 sinks + 26 recent prompt entries + itself, then the oldest non-sink went
        assert cache.layers[0].held == 30 and cache.get_seq_length() == n + 1
        # reference: uncompressed cache, evicted prompt positions masked out, same position ids
        ref_first = model(**inputs, use_cache=True)
        kept = set(range(4)) | set(range(n - 26, n))
        mask = torch.tensor([[1 if i in kept else 0 for i in range(n)] + [1]])
        pos = torch.tensor([[n]])
        if name == "qwen2_vl":
            pos = (pos + model.model.rope_deltas).expand(3, 1, 1)
        ref_inputs = dict(input_ids=tok, attention_mask=mask, **cache_kwargs(model, output_cache(ref_first)),
                          position_ids=pos)
        if name == "qwen2_vl":
            ref_inputs["mm_token_type_ids"] = torch.zeros(1, 1, dtype=torch.int32)
        ref_second = model(**ref_inputs)
    torch.testing.assert_close(second.logits, ref_second.logits, rtol=1e-4, atol=1e-5)


def _eager_attentions(name, inputs):
    model, _ = _model_and_inputs(name, attn="eager")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    return out.attentions  # per layer (B, Hq, N, N)


def test_h2o_and_snapkv_keep_exactly_the_naive_top_entries(tiny):
    """Scores from the model's own eager attention weights, selection by a plain Python sort."""
    name, model, inputs, _ = tiny
    attentions = _eager_attentions(name, inputs)
    n = inputs["input_ids"].shape[1]
    cap = 24
    for method in (H2O(budget=cap), SnapKV(budget=cap, window=8, kernel=1)):
        with method.apply(model), torch.no_grad():
            model(**inputs, use_cache=True)
        for layer_idx, layer in enumerate(method.kv.cache.layers):
            probs = attentions[layer_idx][0]
            if isinstance(method, H2O):
                scores = group_scores(probs.sum(1)[None], 2, "sum")[0]
                forced = set(range(n - 12, n))
            else:
                scores = group_scores(probs[:, -8:].sum(1)[None], 2, "mean")[0]
                forced = set(range(n - 8, n))
            for h in range(2):
                rest = sorted((i for i in range(n) if i not in forced), key=lambda i: (-float(scores[h, i]), i))
                want = sorted(forced | set(rest[: cap - len(forced)]))
                got = layer.positions[0, h].tolist()
                # allow swaps only between entries whose scores tie to float precision
                diff = set(got) ^ set(want)
                assert all(abs(float(scores[h, i]) - float(scores[h, rest[cap - len(forced) - 1]])) < 1e-5
                           for i in diff), (type(method).__name__, layer_idx, h, sorted(diff))


def test_look_m_evicts_image_entries_first_and_merges(tiny):
    name, model, inputs, _ = tiny
    ids = inputs["input_ids"][0]
    n_text = int((ids != image_id(model)).sum())
    cap = n_text + 4  # room for every text entry and four image entries
    method = LookM(budget=cap, window=4)
    with method.apply(model), torch.no_grad():
        model(**inputs, use_cache=True)
    with torch.no_grad():
        full = output_cache(model(**inputs, use_cache=True))
    for layer, ref in zip(method.kv.cache.layers, full.layers):
        pos = layer.positions[0]
        is_img = ids[pos] == image_id(model)
        assert torch.all(is_img.sum(-1) == 4)  # all text kept, image tokens fill the rest
        # merging changed some kept keys (evicted entries were folded in), never the positions
        kept_ref = ref.keys[0].gather(1, pos.unsqueeze(-1).expand(-1, -1, ref.keys.shape[-1]))
        assert not torch.allclose(layer.keys[0], kept_ref)


def test_vl_cache_layer_budgets_follow_density(tiny):
    name, model, inputs, _ = tiny
    method = VLCache(budget=0.3, threshold=0.5)
    with method.apply(model), torch.no_grad():
        model(**inputs, use_cache=True)
    kv = method.kv
    stats = method._request.stats
    dens = [stats["vl_cache"][i][1] for i in range(4)]
    budgets = stats["vl_cache_budgets"]
    n = inputs["input_ids"].shape[1]
    assert sum(budgets) == 4 * resolve_budget(0.3, n)
    assert [l.held for l in kv.cache.layers] == budgets
    order = sorted(range(4), key=lambda i: dens[i])
    assert [budgets[i] for i in order] == sorted(budgets)  # denser layers never get less


@pytest.mark.parametrize("bits", [2, 4])
def test_kivi_quantized_cache(tiny, bits):
    name, model, inputs, base = tiny
    n = inputs["input_ids"].shape[1]
    out, cache = run(KIVI(kv_bits=bits, kv_group=16, kv_residual=16), model, inputs)
    layer = cache.layers[0]
    assert isinstance(layer, QuantizedEvictableLayer)
    assert layer.held == n + NEW - 1 and cache.get_seq_length() == n + NEW - 1
    assert 16 <= layer.keys.shape[2] < 32 and layer.quantized_len % 16 == 0
    # bytes held = full-precision window + packed codes + fp32 (scale, min) per group of 16
    H, D, G = layer.keys.shape[1], layer.keys.shape[3], 16
    want = 0
    for l in cache.layers:
        R, Q = l.keys.shape[2], l.quantized_len
        want += H * (R * 2 * D * 4 + Q * 2 * D * bits // 8 + (Q // G) * D * 2 * 4 + Q * (D // G) * 2 * 4)
    assert cache_nbytes(cache) == want
    full = sum(2 * l.held * H * D * 4 for l in cache.layers)  # float32 K+V
    assert cache_nbytes(cache) < full * (0.6 if bits == 2 else 0.7)
    # the first token comes from the full-precision prefill; later logits stay close to the baseline
    assert torch.equal(out.sequences[0, n], base.sequences[0, n])
    if bits == 4:
        assert (out.scores[1] - base.scores[1]).abs().max() < 0.05 * base.scores[1].abs().max()


def test_eviction_combines_with_quantization(tiny):
    _, model, inputs, _ = tiny
    n = inputs["input_ids"].shape[1]
    _, plain = run(SnapKV(budget=0.5, window=8), model, inputs)
    _, both = run(SnapKV(budget=0.5, window=8, kv_bits=2, kv_group=16, kv_residual=16), model, inputs)
    assert [l.held for l in both.layers] == [l.held for l in plain.layers]
    assert both.layers[0].quantized_len > 0
    # 2-bit codes + fp32 (scale, min) per 16 elements = 6 of 32 bits: each quantized entry saves > 80%
    quantized_share = sum(l.quantized_len for l in both.layers) / sum(l.held for l in both.layers)
    assert cache_nbytes(both) < cache_nbytes(plain) * (1 - 0.8 * quantized_share)
    with pytest.raises(ValueError, match="quantized"):
        with H2O(budget=0.5, kv_bits=2).apply(model):
            pass


def test_hooks_are_removed_after_the_block(tiny):
    _, model, inputs, base = tiny

    def hooks():
        return {(id(m), k) for m in model.modules() for k in (*m._forward_hooks, *m._forward_pre_hooks)}

    before = hooks()
    with pytest.raises(RuntimeError):
        with SnapKV(budget=0.25).apply(model):
            raise RuntimeError("boom")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=NEW, do_sample=False)
    assert torch.equal(out, base.sequences)
    assert hooks() == before


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_each_method_runs_on_tiny_llava_next(make):
    from tests.methods_util import bundle, inputs

    b = bundle("tiny-llava-next")
    inp = inputs(b)
    method = make(0.25)
    out, cache = run(method, b.model, inp, new=3)
    n = inp["input_ids"].shape[1]
    held = [l.held for l in cache.layers]
    cap = resolve_budget(0.25, n)
    extra = 0 if type(method).decode_time else 2
    if isinstance(method, PyramidKV):   # official layer budgets: integer step, total at least the uniform one
        assert held == [b + extra for b in method.layer_budgets(cap, n, len(held))]
        return
    assert sum(held) == len(held) * (resolve_budget(0.25, n + 2) if type(method).decode_time else cap + extra)
    assert cache.get_seq_length() == n + 2 and out.sequences.shape[1] == n + 3

"""Fidelity of the KV methods' defaults to their official code (project issue 13).

Each reference below is written here, from the official repository's rule (the card's ``official``
block names repository, file and commit), in plain torch and Python loops. It uses nothing of this
package's selection code (no ``methods.kv.evict`` helper, no score kernel); both sides get the same
attention weights and the test asserts the same kept entries per layer and KV head.

Two kinds of input:

* synthetic attention weights whose entries are multiples of 2**-12, so that every sum the rules take
  is exact in float32 and float64 alike (the comparison is then exact, ties included; ties break
  towards the earlier entry on both sides, the rule this package documents -- the official
  ``torch.topk`` leaves their order unspecified);
* a LLaVA-1.5-shaped tiny random model (``methods.kv.bench.llava_shaped``: MHA Llama decoder, 576 image
  tokens, 621 prompt tokens, seed 0): our method runs on the sdpa model with its own score kernel and
  the reference reads the eager model's attention weights; entries may only differ where the
  reference's scores tie to float precision.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lvlm_atlas.methods.algorithms.h2o import H2O  # noqa: E402
from lvlm_atlas.methods.algorithms.look_m import LookM  # noqa: E402
from lvlm_atlas.methods.algorithms.pyramidkv import PyramidKV  # noqa: E402
from lvlm_atlas.methods.algorithms.snapkv import SnapKV  # noqa: E402
from lvlm_atlas.methods.algorithms.sparsemm import SparseMM  # noqa: E402
from lvlm_atlas.methods.algorithms.streamingllm import StreamingLLM  # noqa: E402
from lvlm_atlas.methods.kv.controller import KVLayerContext, KVRequest  # noqa: E402
from lvlm_atlas.methods.kv.layers import EvictableLayer  # noqa: E402

UNIT = 2.0 ** -12


# -- synthetic driver --------------------------------------------------------------------------------
class SyntheticCtx(KVLayerContext):
    """A layer context whose attention weights are given (``probs`` ``(1, Hq, q, held)``)."""

    def __init__(self, layer_idx, layer, probs, request, phase):
        super().__init__(layer_idx, layer, None, torch.zeros(1, probs.shape[2], 1), None, request, phase)
        self.probs = probs

    def attention_to_held(self, rows=None):
        p = self.probs if rows is None else self.probs[:, :, rows]
        return p.sum(2)


def dyadic(gen, *shape, causal_from=None):
    """Random weights in multiples of UNIT; with ``causal_from``, query row i sees entries <= causal_from + i."""
    w = torch.randint(0, 4096, shape, generator=gen).float() * UNIT
    if causal_from is not None:
        q, n = shape[-2], shape[-1]
        visible = torch.arange(n)[None, :] <= (causal_from + torch.arange(q))[:, None]
        w = w * visible
    return w


def prompt_probs(seed, layers, hq, n):
    g = torch.Generator().manual_seed(seed)
    return [dyadic(g, 1, hq, n, n, causal_from=0) for _ in range(layers)]


def run_prefill(method, probs, hkv, is_visual=None, seed=0):
    n = probs[0].shape[-1]
    request = KVRequest(n, is_visual, len(probs))
    method.begin_request(request)
    g = torch.Generator().manual_seed(seed + 1)
    layers = []
    for i, p in enumerate(probs):
        layer = EvictableLayer()
        keys = torch.randn(1, hkv, n, 8, generator=g)
        layer.update(keys, torch.randn(1, hkv, n, 8, generator=g))
        method.on_prefill(SyntheticCtx(i, layer, p, request, "prefill"))
        layers.append(layer)
    method.end_prefill(layers, request)
    return layers, request


def kept(layer):
    """Per KV head, the original positions it attends to (padding of per-head budgets left out)."""
    out = []
    for h in range(layer.positions.shape[1]):
        pos = layer.positions[0, h]
        if layer.valid is not None:
            pos = pos[layer.valid[0, h]]
        out.append(sorted(pos.tolist()))
    return out


# -- references, from the official code's description --------------------------------------------------
def ref_top(scores, k):
    """Indices of the k largest scores, ties to the earlier entry, ascending."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:max(k, 0)])


def ref_pool(row, kernel, kind):
    """F.max_pool1d / F.avg_pool1d(kernel, stride=1, padding=kernel//2) with the defaults the official
    code uses: max over the window; average = window sum / kernel (padding counted as zeros)."""
    r = kernel // 2
    out = []
    for i in range(len(row)):
        win = row[max(0, i - r): i + r + 1]
        out.append(max(win) if kind == "max" else sum(win) / kernel)
    return out


def ref_window_votes(p, window, hkv, reduce="sum"):
    """Per KV head, the observation window's votes for the prefix entries: attention of the last
    ``window`` queries summed (SnapKV/PyramidKV) or averaged (SparseMM), query heads of a GQA group
    averaged before pooling (KVCache-Factory ``_grouped_window_attn_cache``, SparseMM ``gqa_func='mean'``)."""
    p = p[0].double()                                  # (Hq, N, N)
    hq, n = p.shape[0], p.shape[-1]
    g = hq // hkv
    votes = p[:, n - window:, : n - window].sum(1)     # (Hq, N - W)
    if reduce == "mean":
        votes = votes / window
    return [[float(sum(votes[h * g + j, i] for j in range(g)) / g) for i in range(n - window)] for h in range(hkv)]


def ref_snapkv(p, capacity, window, kernel, pooling, hkv):
    """SnapKVCluster.update_kv: no compression when q_len < max_capacity_prompt; else the top
    ``capacity - window`` pooled prefix votes per head plus the whole window."""
    n = p.shape[-1]
    if n < capacity:
        return [list(range(n))] * hkv
    votes = ref_window_votes(p, window, hkv)
    return [ref_top(ref_pool(v, kernel, pooling), capacity - window) + list(range(n - window, n)) for v in votes]


def ref_pyramid_prefix_counts(capacity, window, n, layers, beta=20):
    """PyramidKVCluster.update_kv: prefix entries kept by each layer (None: no compression)."""
    if n < capacity:
        return None
    if n < (capacity - window) * 2:
        return [capacity - window] * layers
    min_num = (capacity - window) // beta
    max_num = (capacity - window) * 2 - min_num
    if max_num >= n - window:
        max_num = n - window
        min_num = (capacity - window) * 2 - max_num
    steps = (max_num - min_num) // (layers - 1)
    return [max_num - i * steps for i in range(layers)]


# -- SnapKV -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling,kernel", [("max", 7), ("avg", 7), ("avg", 5), ("max", 1)])
@pytest.mark.parametrize("capacity", [9, 20, 47, 119, 120])
@pytest.mark.parametrize("hq,hkv", [(4, 4), (8, 2)])
def test_snapkv_keeps_what_the_official_rule_keeps(pooling, kernel, capacity, hq, hkv):
    probs = prompt_probs(capacity, 2, hq, 120)
    layers, _ = run_prefill(SnapKV(budget=capacity, window=8, kernel=kernel, pooling=pooling), probs, hkv)
    for p, layer in zip(probs, layers):
        assert kept(layer) == ref_snapkv(p, capacity, 8, kernel, pooling, hkv)


def test_avg_pooling_counts_the_padding_like_the_official_code():
    """The edge case: entries near the ends of the prefix. Counting the padding (official) and not
    counting it (pooling='avg_valid', this package's former rule) keep different entries here."""
    n, window, capacity, kernel = 64, 8, 20, 7
    p = torch.zeros(1, 1, n, n)
    # the window votes high for the first and the last prefix entries, and for a plateau in the middle
    p[0, 0, n - window:, 0] = 1.0
    p[0, 0, n - window:, n - window - 1] = 1.0
    p[0, 0, n - window:, 20:40] = 0.25
    official, _ = run_prefill(SnapKV(budget=capacity, window=window, kernel=kernel, pooling="avg"), [p], 1)
    valid_only, _ = run_prefill(SnapKV(budget=capacity, window=window, kernel=kernel, pooling="avg_valid"), [p], 1)
    assert kept(official[0]) == ref_snapkv(p, capacity, window, kernel, "avg", 1)
    assert kept(official[0]) != kept(valid_only[0])
    # with the padding counted, the end entries score 1/7 (0.143) against the plateau's 0.25
    assert 0 not in kept(official[0])[0] and 0 in kept(valid_only[0])[0]


def test_snapkv_budget_at_or_below_the_window():
    """Official: ``assert max_capacity_prompt - window_size > 0``. Default: refused; small_budget='recent'
    keeps the latest ``capacity`` entries."""
    probs = prompt_probs(3, 1, 2, 40)
    for capacity in (8, 5):
        with pytest.raises(ValueError, match="observation window"):
            run_prefill(SnapKV(budget=capacity, window=8), probs, 2)
        layers, _ = run_prefill(SnapKV(budget=capacity, window=8, small_budget="recent"), probs, 2)
        assert kept(layers[0]) == [list(range(40 - capacity, 40))] * 2


@pytest.mark.parametrize("fraction,n", [(0.1, 95), (0.3, 110), (0.25, 621), (1 / 9, 576), (0.5, 99)])
def test_fractional_budgets_round_down(fraction, n):
    """A fraction keeps floor(fraction * n) entries (kvpress: int(n * (1 - compression_ratio)); the
    original SnapKV code takes a count; KVCache-Factory's run script rounds ratio * n to nearest)."""
    probs = prompt_probs(1, 1, 1, n)
    layers, _ = run_prefill(SnapKV(budget=fraction, window=8), probs, 1)
    want = int(math.floor(fraction * n + 1e-9))
    assert len(kept(layers[0])[0]) == want
    assert kept(layers[0]) == ref_snapkv(probs[0], want, 8, 7, "max", 1)


# -- PyramidKV ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("capacity,n", [
    (12, 120), (30, 120), (60, 120),   # pyramid regime, floored step
    (57, 100),                          # bottom layer cut to the prefix, top raised (max_num >= q_len - window)
    (70, 120),                          # short prompt (q_len < 2 * (capacity - window)): SnapKV fallback
    (120, 120),                         # no compression
])
@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2)])
def test_pyramidkv_layer_budgets_and_entries_follow_the_official_formula(capacity, n, hq, hkv):
    L, window = 6, 8
    probs = prompt_probs(capacity + n, L, hq, n)
    layers, _ = run_prefill(PyramidKV(budget=capacity), probs, hkv)     # defaults: window 8, kernel 7, max
    counts = ref_pyramid_prefix_counts(capacity, window, n, L)
    for i, (p, layer) in enumerate(zip(probs, layers)):
        if counts is None:
            want = [list(range(n))] * hkv
        else:
            votes = ref_window_votes(p, window, hkv)
            want = [ref_top(ref_pool(v, 7, "max"), counts[i]) + list(range(n - window, n)) for v in votes]
        assert kept(layer) == want, i


def test_pyramidkv_per_layer_budgets_are_not_rebalanced():
    """The official integer step leaves the total above the uniform one (+-1 per layer is not
    redistributed); allocation='exact' keeps the total exactly."""
    L, n, capacity, window = 6, 120, 30, 8
    official = PyramidKV(budget=capacity).layer_budgets(capacity, n, L)
    assert official == [window + c for c in ref_pyramid_prefix_counts(capacity, window, n, L)]
    assert official == [51, 43, 35, 27, 19, 11] and sum(official) == 186 > L * capacity
    exact = PyramidKV(budget=capacity, allocation="exact").layer_budgets(capacity, n, L)
    assert sum(exact) == L * capacity


# -- StreamingLLM -------------------------------------------------------------------------------------
class RefStartRecent:
    """streaming_llm/kv_cache.py StartRecentKVCache.__call__: past the cache size, keep the first
    ``start_size`` and the last ``recent_size`` entries."""

    def __init__(self, start, recent):
        self.start, self.recent = start, recent

    def __call__(self, positions):
        if len(positions) <= self.start + self.recent:
            return positions
        return positions[: self.start] + positions[len(positions) - self.recent:]


@pytest.mark.parametrize("budget,sinks", [(20, 4), (9, 4), (4, 4), (30, 1)])
def test_streamingllm_prefill_and_every_decode_step(budget, sinks):
    n, hkv, steps = 50, 2, 12
    method = StreamingLLM(budget=budget, sinks=sinks)
    probs = prompt_probs(0, 1, hkv, n)
    layers, request = run_prefill(method, probs, hkv)
    ref = RefStartRecent(sinks, budget - sinks)
    held = ref(list(range(n)))
    layer = layers[0]
    assert kept(layer) == [held] * hkv
    for t in range(steps):
        layer.update(torch.zeros(1, hkv, 1, 8), torch.zeros(1, hkv, 1, 8))
        method.on_decode(SyntheticCtx(0, layer, torch.zeros(1, hkv, 1, layer.held), request, "decode"))
        held = ref(held + [n + t])
        assert kept(layer) == [held] * hkv


# -- H2O ----------------------------------------------------------------------------------------------
class RefH2O:
    """utils_real_drop/modify_llama.py H2OKVCache_LayerWise: scores accumulate the attention every held
    entry receives (summed over the queries of each forward); past ``hh_size + recent_size`` entries, a
    head keeps its last ``recent_size`` entries and the ``hh_size`` best-scored of the others."""

    def __init__(self, hh, recent):
        self.hh, self.recent = hh, recent
        self.score = None   # per head: list of floats aligned with self.pos
        self.pos = None

    def __call__(self, attn, new_positions):
        """attn: (H, q, held) weights of this forward's queries over the held entries (new ones last)."""
        H = attn.shape[0]
        new = attn.double().sum(1).tolist()
        if self.score is None:
            self.score, self.pos = new, [list(new_positions) for _ in range(H)]
        else:
            self.score = [[a + b for a, b in zip(old + [0.0] * len(new_positions), row)] for old, row in zip(self.score, new)]
            self.pos = [p + list(new_positions) for p in self.pos]
        n = len(self.pos[0])
        if n <= self.hh + self.recent:
            return
        for h in range(H):
            keep = ref_top(self.score[h][: n - self.recent], self.hh) + list(range(n - self.recent, n))
            self.score[h] = [self.score[h][i] for i in keep]
            self.pos[h] = [self.pos[h][i] for i in keep]


@pytest.mark.parametrize("budget", [10, 11, 24, 49])
def test_h2o_prefill_and_decode_match_the_official_heavy_hitter_cache(budget):
    n, H, steps = 50, 4, 10
    g = torch.Generator().manual_seed(budget)
    method = H2O(budget=budget)
    probs = [dyadic(g, 1, H, n, n, causal_from=0)]
    layers, request = run_prefill(method, probs, H)
    recent = budget - budget // 2           # heavy hitters: floor(budget * (1 - recent_ratio))
    ref = RefH2O(budget - recent, recent)
    ref(probs[0][0], range(n))
    layer = layers[0]
    assert kept(layer) == ref.pos
    for t in range(steps):
        layer.update(torch.zeros(1, H, 1, 8), torch.zeros(1, H, 1, 8))
        row = dyadic(g, 1, H, 1, layer.held)
        method.on_decode(SyntheticCtx(0, layer, row, request, "decode"))
        ref(row[0], [n + t])
        assert kept(layer) == ref.pos, t


# -- SparseMM -----------------------------------------------------------------------------------------
def ref_sparsemm(probs, head_scores, capacity, window, ratio, hkv, kernel=5, pooling="avg"):
    """sparsemm_utils.SparseMM: head budgets ``round(score * remain + int(base * ratio))`` with
    ``base = capacity - window`` and ``remain = (base - min_cache) * layers * kv_heads`` (scores
    normalised over all query heads, summed per GQA group); each head keeps its top budget of the
    pooled mean window votes (a slice: never more than the prefix) plus the window."""
    L, hq = head_scores.shape
    n = probs[0].shape[-1]
    s = head_scores.double() / head_scores.double().sum()
    s = s.reshape(L, hkv, hq // hkv).sum(-1)
    base = capacity - window
    min_cache = int(base * ratio)
    remain = (base - min_cache) * L * hkv
    caps = torch.round(s * remain + min_cache).int()
    out = []
    for i, p in enumerate(probs):
        votes = ref_window_votes(p, window, hkv, reduce="mean")
        out.append([ref_top(ref_pool(v, kernel, pooling), int(caps[i, h])) + list(range(n - window, n))
                    for h, v in enumerate(votes)])
    return out


@pytest.mark.parametrize("capacity", [16, 30, 64])
def test_sparsemm_head_budgets_and_entries_follow_the_official_code(tmp_path, capacity):
    from lvlm_atlas.methods.kv.visual_heads import VisualHeadScores

    L, hq, hkv, n, window = 3, 4, 2, 80, 8
    g = torch.Generator().manual_seed(capacity)
    head_scores = torch.randint(1, 64, (L, hq), generator=g).float()
    head_scores[1, 2] = 400.0                                   # one strongly visual head: capped at the prefix
    path = tmp_path / "scores.json"
    VisualHeadScores(head_scores, "synthetic", 1).save(path)
    probs = prompt_probs(capacity, L, hq, n)
    method = SparseMM(budget=capacity, window=window, head_scores=str(path))   # kernel 5, avg, ratio 0.1
    layers, _ = run_prefill(method, probs, hkv)
    assert [kept(layer) for layer in layers] == ref_sparsemm(probs, head_scores, capacity, window, 0.1, hkv)


# -- LOOK-M -------------------------------------------------------------------------------------------
def ref_look_m_text_prior(p, is_visual, hh, recent):
    """TextAVGMergeKVCache_LayerWise.__call__ at prefill: scores are the attention summed over all
    queries; image entries and the recent window get -65516; a head keeps its top ``hh`` of the
    non-recent entries, every entry still scoring >= 0 (the text) and the last ``recent`` entries."""
    p = p[0].double()
    H, n = p.shape[0], p.shape[-1]
    out = []
    for h in range(H):
        score = p[h].sum(0).tolist()
        score = [s - 65516.0 if is_visual[i] else s for i, s in enumerate(score)]
        top = ref_top(score[: n - recent], hh)
        keep = set(top) | set(range(n - recent, n)) | {i for i in range(n - recent) if score[i] >= 0}
        out.append(sorted(keep))
    return out


def test_look_m_selection_matches_the_official_text_prior_when_the_budget_holds_the_text():
    n, H, window = 60, 4, 8
    is_visual = torch.zeros(1, n, dtype=torch.bool)
    is_visual[0, 5:45] = True                                  # 40 image tokens, 20 text tokens
    probs = prompt_probs(7, 1, H, n)
    capacity = 30                                              # >= text outside the window (12) + window
    layers, _ = run_prefill(LookM(budget=capacity, window=window, merge="none"), probs, H, is_visual=is_visual)
    assert kept(layers[0]) == ref_look_m_text_prior(probs[0], is_visual[0].tolist(), capacity - window, window)
    # below the text count the official code keeps every text entry anyway (over budget); ours evicts text
    small = 16
    layers, _ = run_prefill(LookM(budget=small, window=window, merge="none"), probs, H, is_visual=is_visual)
    ref = ref_look_m_text_prior(probs[0], is_visual[0].tolist(), small - window, window)
    assert all(len(k) == small for k in kept(layers[0])) and all(len(r) == 20 for r in ref)


# -- KIVI ---------------------------------------------------------------------------------------------
def ref_kivi_dequant(x, bits, group, mode):
    """quant/new_pack.py: per group, scale = (max - min) / (2**bits - 1), code = round(clamp((x - min) /
    scale)), value = code * scale + min. Keys: groups of ``group`` tokens per channel; values: groups of
    ``group`` channels per token."""
    B, H, N, D = x.shape
    levels = 2 ** bits - 1
    out = torch.empty_like(x)
    if mode == "channel":
        for t0 in range(0, N, group):
            blk = x[:, :, t0:t0 + group, :]
            mn, mx = blk.amin(2, keepdim=True), blk.amax(2, keepdim=True)
            scale = (mx - mn) / levels
            out[:, :, t0:t0 + group, :] = ((blk - mn) / scale).clamp(0, levels).round() * scale + mn
    else:
        for c0 in range(0, D, group):
            blk = x[..., c0:c0 + group]
            mn, mx = blk.amin(-1, keepdim=True), blk.amax(-1, keepdim=True)
            scale = (mx - mn) / levels
            out[..., c0:c0 + group] = ((blk - mn) / scale).clamp(0, levels).round() * scale + mn
    return out


@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("mode", ["channel", "token"])
def test_kivi_quantization_matches_the_official_formula(bits, mode):
    from lvlm_atlas.kernels.kv_quant import dequantize, quantize

    g = torch.Generator().manual_seed(bits)
    x = torch.randn(1, 2, 64, 64, generator=g)
    got = dequantize(quantize(x, bits, 32, mode, backend="torch"))
    torch.testing.assert_close(got, ref_kivi_dequant(x, bits, 32, mode), rtol=0, atol=1e-6)


# -- the LLaVA-1.5-shaped tiny random model ----------------------------------------------------------------
@pytest.fixture(scope="module")
def llava15():
    from lvlm_atlas.methods.kv.bench import llava_shaped

    model, inputs = llava_shaped(layers=4, hidden=128, heads=4, seed=0)
    eager, _ = llava_shaped(layers=4, hidden=128, heads=4, seed=0)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = [a.double() for a in eager(**inputs, output_attentions=True).attentions]
    return model, inputs, attentions


def _near_tie_only(got, want, score, boundary_score, tol=1e-6):
    return all(abs(score[i] - boundary_score) <= tol * max(1.0, abs(boundary_score)) for i in set(got) ^ set(want))


@pytest.mark.parametrize("name", ["snapkv", "pyramidkv", "streamingllm", "h2o"])
def test_official_rules_on_the_llava15_shaped_model(llava15, name):
    """Budget 0.25 of the 621-token prompt; prefill only (the entries kept after the prompt)."""
    model, inputs, attentions = llava15
    n = inputs["input_ids"].shape[1]
    cap = int(0.25 * n)
    method = {"snapkv": SnapKV, "pyramidkv": PyramidKV, "streamingllm": StreamingLLM, "h2o": H2O}[name](budget=0.25)
    with method.apply(model), torch.no_grad():
        model(**inputs, use_cache=True)
    layers = method.kv.cache.layers
    L, H = len(layers), layers[0].keys.shape[1]
    mismatched = 0
    for i, layer in enumerate(layers):
        p = attentions[i]
        for h in range(H):
            got = kept(layer)[h]
            if name == "streamingllm":
                want = RefStartRecent(4, cap - 4)(list(range(n)))
                assert got == want
                continue
            if name == "h2o":
                recent = cap - cap // 2
                score = p[0, h].sum(0).tolist()
                prefix, k = score[: n - recent], cap - recent
                want = ref_top(prefix, k) + list(range(n - recent, n))
            else:
                window = method.window
                k = (cap if name == "snapkv" else window + ref_pyramid_prefix_counts(cap, window, n, L)[i]) - window
                votes = ref_window_votes(p, window, H)[h]
                prefix = ref_pool(votes, method.kernel, method.pooling)
                want = ref_top(prefix, k) + list(range(n - window, n))
            if got != want:
                boundary = sorted(prefix, reverse=True)[k - 1]
                assert _near_tie_only(got, want, prefix, boundary), (name, i, h, sorted(set(got) ^ set(want)))
                mismatched += 1
    assert mismatched == 0, f"{mismatched} layer-heads differ only by float near-ties"


def test_defaults_are_the_official_settings():
    """The defaults the cards cite: SnapKV's LongBench configs (w32_k7_maxpool), KVCache-Factory's
    run_longbench.py for PyramidKV (window 8, kernel 7, maxpool, beta 20), SparseMM's init_sparsemm
    (window 32, kernel 5, avgpool, RATIO 0.1), StreamingLLM's 4 sinks, KIVI's example.py (2 bits,
    group 32, residual 32)."""
    from lvlm_atlas.methods.algorithms.kivi import KIVI

    s = SnapKV()
    assert (s.window, s.kernel, s.pooling, s.small_budget) == (32, 7, "max", "error")
    p = PyramidKV()
    assert (p.window, p.kernel, p.pooling, p.beta, p.allocation) == (8, 7, "max", 20, "official")
    m = SparseMM()
    assert (m.window, m.kernel, m.pooling, m.uniform_ratio, m.allocation) == (32, 5, "avg", 0.1, "official")
    assert StreamingLLM().sinks == 4
    k = KIVI()
    assert (k.kv_bits, k.kv_group, k.kv_residual) == (2, 32, 32)

"""Fidelity: each token method's default against an independent, naive re-statement of its OFFICIAL rule.

The references below are written from the official code's description (repository, file and commit in
each method card's `official` field), with plain loops and torch ops; they never call this package's
method code or its helpers. Both sides see the same tensors: a LLaVA-1.5-shaped tiny random model
(32 decoder layers as in LLaVA-1.5-7B, a CLIP tower with a 336 px image and 14 px patches, i.e. 576
visual tokens; float64, eager attention; seed 0), or tensors captured from it.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from lvlm_atlas.methods import presets, registry  # noqa: E402
from tests.methods_util import inputs  # noqa: E402

N_VIS = 576


@functools.lru_cache(maxsize=None)
def llava576(attn: str = "eager"):
    """LLaVA-1.5 layout: 32 tiny Llama layers, CLIP 336/14 (576 visual tokens), random weights, seed 0."""
    from transformers import AutoModelForImageTextToText

    from lvlm_atlas.methods.tokenizer import ByteTokenizer

    torch.set_grad_enabled(False)
    config = presets._llava_config(presets._llama_text(layers=32), presets._clip_vision(image_size=336))
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config, attn_implementation=attn, dtype=torch.float64).eval()
    return presets.ModelBundle("llava576", "llava", model, attn, "cpu", torch.float64, image_size=(336, 336),
                               tokenizer=ByteTokenizer(vocab_size=config.text_config.vocab_size),
                               image_processor=presets._image_processor("llava", (336, 336), config))


def _prompt(b):
    return inputs(b, prompt="What is in the picture? Answer in one short sentence, please.")


def _llm_input(b, inp) -> torch.Tensor:
    """The decoder input (1, L, D) of the unmodified model."""
    got = {}
    lm = b.model.model.language_model
    h = lm.register_forward_pre_hook(lambda m, a, kw: (got.setdefault("e", kw["inputs_embeds"]), None)[1], with_kwargs=True)
    try:
        b.model(**inp)
    finally:
        h.remove()
    return got["e"]


def _visual_rows(b, inp) -> torch.Tensor:
    return (inp["input_ids"][0] == b.model.config.image_token_id).nonzero().squeeze(1)


def _run(b, inp, method, grab=None):
    """Run one prefill under `method`; `grab=(module, dict)` records what `module` receives after the
    method's own hooks (registered inside the session, so it runs after them)."""
    with method.apply(b.model) as s:
        h = None
        if grab is not None:
            module, got = grab

            def hook(mod, a, kw):
                got.setdefault("x", (kw.get("inputs_embeds") if "inputs_embeds" in kw else
                                     (a[0] if a else kw["hidden_states"])).clone())
                return None

            h = module.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            b.model(**inp)
        finally:
            if h is not None:
                h.remove()
    return s.last


# --- a naive decoder: one layer at a time, its attention probabilities recomputed by hand --------------
def _rot(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def _layer_attention(layer, lm, x, pos):
    """(heads, n, n) causal attention probabilities of `layer` on input x (1, n, D) at positions `pos`."""
    att = layer.self_attn
    hd = att.head_dim
    h = layer.input_layernorm(x)
    n = x.shape[1]
    q = att.q_proj(h).view(n, -1, hd).transpose(0, 1)
    k = att.k_proj(h).view(n, -1, hd).transpose(0, 1)
    cos, sin = lm.rotary_emb(x, pos.unsqueeze(0))
    cos, sin = cos[0], sin[0]
    q, k = q * cos + _rot(q) * sin, k * cos + _rot(k) * sin
    k = k.repeat_interleave(q.shape[0] // k.shape[0], dim=0)
    s = (q @ k.transpose(1, 2)) / math.sqrt(hd)
    s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1)


def _layer_forward(layer, lm, x, pos):
    att = layer.self_attn
    hd = att.head_dim
    n = x.shape[1]
    p = _layer_attention(layer, lm, x, pos)
    v = att.v_proj(layer.input_layernorm(x)).view(n, -1, hd).transpose(0, 1)
    v = v.repeat_interleave(p.shape[0] // v.shape[0], dim=0)
    o = (p @ v).transpose(0, 1).reshape(1, n, -1)
    x = x + att.o_proj(o)
    return x + layer.mlp(layer.post_attention_layernorm(x))


# --- FastV: github.com/pkunlp-icler/FastV, modeling_llama.py (fastv_k=2, fastv_r=0.5) ------------------
def test_fastv_default_matches_official_rule():
    b = llava576()
    inp = _prompt(b)
    vis = _visual_rows(b, inp)
    att = b.model(**inp, output_attentions=True).attentions[1][0]        # layer K-1 = 1, (heads, L, L)
    last = att.mean(0)[-1]
    start = int(vis[0])
    keep_n = round(N_VIS * (1 - 0.5))
    top = last[start:start + N_VIS].topk(keep_n).indices + start
    official = sorted(top.tolist())
    stats = _run(b, inp, registry.create("fastv"))
    assert stats.kept["layer2"].tolist() == official


def test_fastv_budget_rounding_is_floor_where_official_rounds():
    # R = 0.7: official keeps round(576 * 0.3) = 173; the one budget rule keeps floor(172.8) = 172
    b = llava576()
    stats = _run(b, _prompt(b), registry.create("fastv", budget=0.3))
    assert round(N_VIS * (1 - 0.7)) == 173 and stats.visual_per_layer[2] == 172


# --- PyramidDrop: github.com/Cooperx521/PyramidDrop, llava/model/modeling_llama_pdrop.py -----------------
def _pdrop_official(b, inp, layer_list=(8, 16, 24), ratio=0.5):
    lm = b.model.model.language_model
    x = _llm_input(b, inp)
    vis = _visual_rows(b, inp)
    start = int(vis[0])
    orig = torch.arange(x.shape[1])                         # original row of each present token
    n_img = N_VIS
    kept = {}
    for idx, layer in enumerate(lm.layers):
        pos = torch.arange(x.shape[1])                      # positions renumbered after every drop
        x = _layer_forward(layer, lm, x, pos)
        rank_layer = idx + 1
        if rank_layer in layer_list:
            s = layer_list.index(rank_layer)
            keep_len = int(N_VIS * ratio ** (s + 1))
            # the attention of layer `rank_layer` itself, from its input, for the last instruction token
            p = _layer_attention(lm.layers[rank_layer], lm, x, torch.arange(x.shape[1]))
            score = p.mean(0)[-1, start:start + n_img]
            top = (score.topk(keep_len).indices + start).sort().values
            rows = torch.cat([torch.arange(start), top, torch.arange(start + n_img, x.shape[1])])
            x, orig = x[:, rows], orig[rows]
            n_img = keep_len
            kept[rank_layer] = orig[start:start + n_img].tolist()
    return kept


def test_pyramiddrop_default_matches_official_rule_own_layer_and_renumbered_positions():
    b = llava576()
    inp = _prompt(b)
    official = _pdrop_official(b, inp)
    stats = _run(b, inp, registry.create("pyramiddrop"))
    assert sorted(official) == [8, 16, 24]
    for layer, rows in official.items():
        assert stats.kept[f"layer{layer}"].tolist() == rows, f"layer {layer}"
    assert [stats.visual_per_layer[l] for l in (8, 16, 24)] == [288, 144, 72]


def test_pyramiddrop_previous_layer_variant_is_not_the_official_rule():
    b = llava576()
    inp = _prompt(b)
    official = _pdrop_official(b, inp)
    stats = _run(b, inp, registry.create("pyramiddrop", score_layer="previous", renumber_positions=False))
    assert any(stats.kept[f"layer{l}"].tolist() != rows for l, rows in official.items())


# --- SparseVLM: github.com/Gumpest/SparseVLMs, modelling_sparse_llama.py, score.py, utils.py (v1.0) ------
def _dpc_knn_official(x, cluster_num):
    """utils.cluster_and_merge for one batch row, without the 1e-6 tie-breaking noise."""
    n, c = x.shape
    d = (x[:, None, :] - x[None, :, :]).norm(dim=-1) / c ** 0.5
    near = d.topk(cluster_num, dim=-1, largest=False).values
    density = (-(near ** 2).mean(-1)).exp()
    parent = torch.empty(n, dtype=x.dtype)
    for i in range(n):
        denser = [d[i, j] for j in range(n) if density[j] > density[i]]
        parent[i] = min(denser) if denser else d.max()
    centres = (parent * density).topk(cluster_num).indices
    assign = d[centres].argmin(dim=0)
    for t, cidx in enumerate(centres.tolist()):
        assign[cidx] = t
    merged = torch.stack([x[assign == t].sum(0) / ((assign == t).sum() + 1e-6) for t in range(cluster_num)])
    return centres, merged


_SPARSEVLM_CACHE: dict = {}


def _sparsevlm_official(b, inp, retain=192, layers=(2, 6, 15)):
    key = (retain, layers)
    if key not in _SPARSEVLM_CACHE:
        _SPARSEVLM_CACHE[key] = _sparsevlm_official_run(b, inp, retain, layers)
    return _SPARSEVLM_CACHE[key]


def _sparsevlm_official_run(b, inp, retain, layers):
    """The official v1.0 forward: raters once; at each pruning layer its own attention ranks, its output
    is pruned, the recycled tokens' clusters are appended after the kept visual tokens, positions are
    renumbered. Returns the raters, and per pruning point (layer l+1) the kept tokens' original rows,
    the cluster centres' original rows and the cluster vectors."""
    lm = b.model.model.language_model
    emb = _llm_input(b, inp)
    vis = _visual_rows(b, inp)
    v_start, t_start = int(vis[0]), int(vis[-1]) + 1
    m = (emb[0, v_start:t_start] @ emb[0, t_start:].T).softmax(1).mean(0)
    t_idx = torch.where(m > m.mean())[0]
    raters = t_idx + t_start
    if not layers:
        return raters, {}
    counts = {192: (300, 200, 110), 128: (303, 110, 36), 96: (238, 48, 26), 64: (66, 30, 17)}[retain]
    x, ident, v_num, out = emb, list(range(emb.shape[1])), N_VIS, {}
    for li, layer in enumerate(lm.layers):
        pos = torch.arange(x.shape[1])
        y = _layer_forward(layer, lm, x, pos)
        if li in layers:
            s = layers.index(li)
            text_start = v_start + v_num
            p = _layer_attention(layer, lm, x, pos).mean(0)
            rel = p[t_idx + text_start][:, v_start:text_start].mean(0)
            top = set(rel.topk(min(counts[s], v_num - 1)).indices.tolist())
            deleted = torch.tensor([i for i in range(v_num) if i not in top])
            m_num = int(deleted.numel() * 0.3) + 1
            recycled = deleted[rel[deleted].topk(m_num).indices]
            c_num = int(m_num / 10) + 1
            centres, merged = _dpc_knn_official(y[0, v_start + recycled], c_num)
            kept = sorted(top)
            out[li + 1] = ([ident[v_start + i] for i in kept], [ident[v_start + int(recycled[c])] for c in centres],
                           merged)
            y = torch.cat([y[:, :v_start], y[:, [v_start + i for i in kept]], merged.unsqueeze(0), y[:, text_start:]], 1)
            ident = (ident[:v_start] + [ident[v_start + i] for i in kept]
                     + [ident[v_start + int(recycled[c])] for c in centres] + ident[text_start:])
            v_num = len(kept) + c_num
        x = y
    return raters, out


def test_sparsevlm_raters_are_chosen_once_by_embedding_similarity():
    from lvlm_atlas.methods.algorithms.sparsevlm import text_raters

    b = llava576()
    inp = _prompt(b)
    emb = _llm_input(b, inp)
    vis = _visual_rows(b, inp)
    raters, _ = _sparsevlm_official(b, inp, layers=())
    assert text_raters(emb, vis).tolist() == raters.tolist() and 0 < raters.numel()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_sparsevlm_default_matches_official_rule(attn):
    b = llava576()
    inp = _prompt(b)
    _, official = _sparsevlm_official(b, inp)
    m = registry.create("sparsevlm")
    assert m.prune_layers(32) == [3, 7, 16]                 # after official layers 2, 6, 15
    assert sorted(official) == [3, 7, 16]
    bm = llava576(attn)                                     # the same weights (seed 0)
    got = {}                                                # the rows layer 3 receives (after pruning)
    stats = _run(bm, inp, m, grab=(bm.model.model.language_model.layers[3], got))
    for layer, (top, centres, _) in official.items():
        assert stats.kept[f"layer{layer}"].tolist() == sorted(top + centres), f"layer {layer}"
    top, centres, merged = official[3]
    assert len(top) == 300 and len(centres) == 9                # int(int(276 * 0.3 + 1) / 10) + 1
    assert [stats.visual_per_layer[l] for l in (3, 7, 16)] == [309, 204, 113]
    # each cluster token (hosted in its centre's row) is the official cluster mean
    vis = set(_visual_rows(b, inp).tolist())
    present = sorted([i for i in range(inp["input_ids"].shape[1]) if i not in vis] + stats.kept["layer3"].tolist())
    for t, row in enumerate(centres):
        torch.testing.assert_close(got["x"][0, present.index(row)], merged[t])


# --- VisionZip: github.com/dvlab-research/VisionZip, visionzip/clip_encoder.py, utils.py ----------------
def test_visionzip_default_matches_official_rule():
    b = llava576()
    inp = _prompt(b)
    vt = b.model.model.vision_tower
    out = vt(inp["pixel_values"].to(torch.float64), output_attentions=True, output_hidden_states=True)
    dominant_arg, contextual = 54, 10                         # visionzip(model, dominant=54, contextual=10)
    attn = out.attentions[-2]                                 # (1, H, 577, 577)
    feats = out.hidden_states[-2][0]                          # (577, C): the projector's input
    layer = vt.vision_model.encoder.layers[-2] if hasattr(vt, "vision_model") else vt.encoder.layers[-2]
    k = layer.self_attn.k_proj(layer.layer_norm1(out.hidden_states[-3]))[0]
    H = layer.self_attn.num_heads
    metric = k.view(k.shape[0], H, -1).mean(1)               # keys averaged over heads
    cls_sum = attn[0, :, 0, 1:].sum(0)
    top = cls_sum.topk(dominant_arg - 1).indices + 1          # the CLS token is the 54th dominant token
    all_idx = torch.cat([torch.tensor([0]), top])
    rest = torch.tensor([i for i in range(577) if i not in set(all_idx.tolist())])
    mnorm = metric[rest] / metric[rest].norm(dim=-1, keepdim=True)
    step = max(1, rest.numel() // contextual)
    tgt = torch.arange(0, rest.numel(), step)[:contextual]
    others = torch.tensor([i for i in range(rest.numel()) if i not in set(tgt.tolist())])
    assign = (mnorm[others] @ mnorm[tgt].T).argmax(1)
    ctx_feats = []
    for t in range(contextual):
        members = others[assign == t]
        agg = feats[rest[members]].sum(0) / max(1, members.numel())
        ctx_feats.append(feats[rest[tgt[t]]] + agg)
    proj = b.model.model.multi_modal_projector
    official_patches = sorted(((top - 1).tolist()) + (rest[tgt] - 1).tolist())   # patch indices 0..575

    vis = _visual_rows(b, inp)
    got = {}
    stats = _run(b, inp, registry.create("visionzip", budget=64), grab=(b.model.model.language_model, got))
    kept_patches = [int((vis == p).nonzero()) for p in stats.kept["pre_llm"].tolist()]
    cls_slot = min(set(range(N_VIS)) - set(official_patches))
    assert sorted(kept_patches) == sorted(official_patches + [cls_slot]) and len(kept_patches) == 64
    # embeddings: contextual tokens are projector(target + mean of members); the CLS row holds projector(CLS)
    e = got["x"][0]
    for t in range(contextual):
        patch = int(rest[tgt[t]]) - 1
        torch.testing.assert_close(_pre_llm_row(e, inp, b, stats, patch), proj(ctx_feats[t].unsqueeze(0))[0])
    torch.testing.assert_close(_pre_llm_row(e, inp, b, stats, cls_slot), proj(feats[0].unsqueeze(0))[0])


def _pre_llm_row(embeds_full, inp, b, stats, patch):
    """The decoder-input vector of visual token `patch` after pre-LLM pruning (rows are text + kept)."""
    vis = _visual_rows(b, inp)
    row = int(vis[patch])
    L = inp["input_ids"].shape[1]
    kept = set(stats.kept["pre_llm"].tolist())
    present = [i for i in range(L) if i not in set(vis.tolist()) or i in kept]
    return embeds_full[present.index(row)]


# --- DivPrune: github.com/vbdi/divprune, LLaVA/llava/model/llava_arch.py ----------------------------------
def _divprune_official(x, ratio):
    n = x.shape[0]
    terms = int(round(ratio * n))
    xn = x / x.norm(dim=1, keepdim=True)
    dist = 1.0 - xn @ xn.T
    s = []
    for i in range(terms):
        if i == 0:
            scores = dist.topk(2, dim=0, largest=False).values[1, :]
        else:
            scores = dist[torch.tensor(s)].min(dim=0).values
        s.append(int(scores.argmax()))
    return s


@pytest.mark.parametrize("ratio", [0.25, 0.098])
def test_divprune_matches_official_rule(ratio):
    b = llava576()
    inp = _prompt(b)
    vis = _visual_rows(b, inp)
    x = _llm_input(b, inp)[0, vis]
    official = _divprune_official(x, ratio)
    stats = _run(b, inp, registry.create("divprune", budget=ratio))
    ours = [int((vis == p).nonzero()) for p in stats.kept["pre_llm"].tolist()]
    n_ours = math.floor(ratio * N_VIS + 1e-9)
    # the official count is int(round(r N)); the one budget rule is floor(r N): 0.098 * 576 = 56.4 -> 56 both,
    # 0.25 -> 144 both; the greedy order makes ours a prefix of the official sequence in any case
    assert sorted(ours) == sorted(official[:n_ours])


# --- Random and pool: no official code; the survey's definitions -----------------------------------------
def test_random_is_a_seeded_uniform_sample_without_replacement():
    b = llava576()
    inp = _prompt(b)
    vis = _visual_rows(b, inp)
    stats = _run(b, inp, registry.create("random", budget=64, seed=3))
    g = torch.Generator().manual_seed(3)
    ref = torch.randperm(N_VIS, generator=g)[:64].sort().values
    assert torch.equal(stats.kept["pre_llm"], vis[ref])


def test_pool_is_2d_average_pooling_of_the_grid():
    b = llava576()
    inp = _prompt(b)
    vis = _visual_rows(b, inp)
    x = _llm_input(b, inp)[0, vis]                                  # (576, D), raster order 24 x 24
    ref = F.avg_pool2d(x.T.reshape(1, -1, 24, 24), kernel_size=3).reshape(x.shape[1], -1).T   # 8 x 8 = 64
    got = {}
    stats = _run(b, inp, registry.create("pool", budget=64), grab=(b.model.model.language_model, got))
    kept = stats.kept["pre_llm"]
    rows = [int((vis == p).nonzero()) for p in kept.tolist()]
    expected_rows = [(3 * i + 1) * 24 + 3 * j + 1 for i in range(8) for j in range(8)]   # block centres
    assert rows == expected_rows
    start = int(vis[0])
    torch.testing.assert_close(got["x"][0, start:start + 64], ref)


# --- LLaVA-PruMerge+: github.com/42Shawn/LLaVA-PruMerge, clip_encoder.py (token_prune_merge_advanced_plus) --
def _prumerge_plus_official(b, inp):
    import numpy as np

    vt = b.model.model.vision_tower
    out = vt(inp["pixel_values"].to(torch.float64), output_hidden_states=True)
    layers = vt.vision_model.encoder.layers if hasattr(vt, "vision_model") else vt.encoder.layers
    last = layers[-1]
    h = last.layer_norm1(out.hidden_states[-2])               # the last layer's attention input
    q, k = last.self_attn.q_proj(h), last.self_attn.k_proj(h)  # hooks on q_proj / k_proj outputs
    feats = out.hidden_states[-2][:, 1:]                       # feature_select: layer -2, CLS dropped
    B, N, C = feats.shape
    attn = ((q @ k.transpose(-2, -1)) * C ** -0.5).softmax(-1)
    cls_attn = attn[:, 0, 1:]
    a = cls_attn.flatten().numpy()
    q1, q3 = np.percentile(a, 25), np.percentile(a, 75)
    ratio = len(np.where(a > q3 + 1.5 * (q3 - q1))[0]) / len(a)
    idx = cls_attn.topk(int(N * ratio), dim=1).indices
    step = int(1 / ratio)
    seq = torch.arange(0, 575, int(step / 3))
    filtered = torch.tensor([x for x in seq.tolist() if x not in idx.flatten().tolist()])
    idx = torch.cat([idx, filtered.unsqueeze(0)], dim=1)[0]
    keys = k[0, 1:]
    compl = torch.tensor([i for i in range(N) if i not in set(idx.tolist())])
    x_o, a_o, k_o = feats[0, idx], cls_attn[0, idx], F.normalize(keys[idx], dim=-1)
    x_n, a_n, k_n = feats[0, compl], cls_attn[0, compl], F.normalize(keys[compl], dim=-1)
    updated = []
    for i in range(idx.numel()):
        rest_x = torch.cat([x_o[:i], x_o[i + 1:], x_n])
        rest_a = torch.cat([a_o[:i], a_o[i + 1:], a_n])
        rest_k = torch.cat([k_o[:i], k_o[i + 1:], k_n])
        top = (k_o[i] @ rest_k.T).topk(32).indices
        updated.append(x_o[i] + (rest_x[top] * rest_a[top, None]).sum(0))
    extra = (x_n * a_n[:, None]).sum(0)
    return idx.tolist(), torch.stack(updated), extra


def test_prumerge_plus_default_matches_official_rule():
    b = llava576()
    inp = _prompt(b)
    idx, updated, extra = _prumerge_plus_official(b, inp)
    got = {}
    stats = _run(b, inp, registry.create("prumerge_plus"), grab=(b.model.model.language_model, got))
    vis = _visual_rows(b, inp)
    kept = [int((vis == p).nonzero()) for p in stats.kept["pre_llm"].tolist()]
    slot = min(set(range(N_VIS)) - set(idx))                  # the extra token's host row
    assert sorted(kept) == sorted(idx + [slot]) and stats.visual_after == len(idx) + 1 < N_VIS
    proj = b.model.model.multi_modal_projector
    e = got["x"][0]
    for t, patch in enumerate(idx):
        torch.testing.assert_close(_pre_llm_row(e, inp, b, stats, patch), proj(updated[t].unsqueeze(0))[0])
    torch.testing.assert_close(_pre_llm_row(e, inp, b, stats, slot), proj(extra.unsqueeze(0))[0])

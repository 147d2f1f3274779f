"""ToMe in LLaVA's CLIP tower and in the Qwen2-VL / Qwen2.5-VL ViT (2x2 groups, windows): r=0 is the
baseline exactly; the merge map, size-weighted merging and proportional attention against naive loops; the
hooked towers equal ToMe written out from the blocks' submodules; the LLM gets one token per group at the
group's first position (M-RoPE ids on Qwen)."""
from __future__ import annotations

import json
import math

import pytest
import torch

pytest.importorskip("transformers")

from lvlm_atlas.methods import harness, registry  # noqa: E402
from lvlm_atlas.methods.algorithms.tome import bipartite_merge_map, merge_wavg, unmerge  # noqa: E402
from lvlm_atlas.methods.transformers_adapter import ModelAdapter, vision_encoder_layers  # noqa: E402
from lvlm_atlas.methods.transformers_adapter import qwen_vision_blocks, qwen_vision_qk  # noqa: E402
from tests.methods_util import bundle, decoder_inputs, inputs, noise_image  # noqa: E402


def _naive_merge(x, size, metric, r):
    """The official bipartite soft matching + merge_wavg, written with Python loops (batch 1, class token)."""
    n = x.shape[0]
    r = min(r, (n - 1) // 2)
    m = [metric[i] / metric[i].norm() for i in range(n)]
    A, B = list(range(0, n, 2)), list(range(1, n, 2))
    best = []
    for ai, a in enumerate(A):
        sims = [float(m[a] @ m[b]) for b in B]
        if ai == 0:
            sims = [-math.inf] * len(B)
        j = max(range(len(B)), key=lambda t: sims[t])
        best.append((sims[j], ai, j))
    order = sorted(range(len(A)), key=lambda ai: -best[ai][0])
    src = set(order[:r])
    unm = sorted(ai for ai in range(len(A)) if ai not in src)
    groups = {j: [B[j]] for j in range(len(B))}
    for ai in src:
        groups[best[ai][2]].append(A[ai])
    rows, sizes = [], []
    for ai in unm:
        rows.append(x[A[ai]])
        sizes.append(size[A[ai]])
    for j in range(len(B)):
        members = groups[j]
        w = sum(float(size[t]) for t in members)
        rows.append(sum(x[t] * float(size[t]) for t in members) / w)
        sizes.append(torch.tensor([w]))
    return torch.stack(rows), torch.stack(sizes).reshape(-1, 1)


def test_merge_map_and_weighted_merge_match_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    for n, r in [(65, 8), (65, 32), (33, 5), (10, 100)]:
        x = torch.randn(n, 6, generator=g)
        metric = torch.randn(n, 4, generator=g)
        size = torch.randint(1, 4, (n, 1), generator=g).float()
        dest, n_out, used = bipartite_merge_map(metric[None], r)
        assert used == min(r, (n - 1) // 2) and n_out == n - used
        got, got_size = merge_wavg(x[None], size[None], dest, n_out)
        want, want_size = _naive_merge(x, size, metric, r)
        torch.testing.assert_close(got[0], want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_size[0], want_size)
        assert int(dest[0, 0]) == 0                                    # the class token stays first, alone
        assert torch.equal(unmerge(got, dest)[0, 0], got[0, 0])


def test_proportional_attention_matches_a_naive_loop():
    b = bundle("tiny-llava")
    attn = vision_encoder_layers(ModelAdapter.of(b.model))[0].self_attn
    g = torch.Generator().manual_seed(1)
    n, c = 9, attn.embed_dim
    x = torch.randn(1, n, c, generator=g)
    size = torch.randint(1, 5, (1, n, 1), generator=g).float()
    out, _ = attn(x, attention_mask=size.log()[:, None, None, :, 0])
    q = attn.q_proj(x)[0].view(n, attn.num_heads, -1)
    k = attn.k_proj(x)[0].view(n, attn.num_heads, -1)
    v = attn.v_proj(x)[0].view(n, attn.num_heads, -1)
    rows = []
    for i in range(n):
        heads = []
        for h in range(attn.num_heads):
            logits = [float(q[i, h] @ k[j, h]) * attn.scale + math.log(float(size[0, j, 0])) for j in range(n)]
            mx = max(logits)
            w = [math.exp(t - mx) for t in logits]
            s = sum(w)
            heads.append(sum(v[j, h] * (w[j] / s) for j in range(n)))
        rows.append(torch.cat(heads))
    want = attn.out_proj(torch.stack(rows))
    torch.testing.assert_close(out[0], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model,visual", [("tiny-llava", 64), ("tiny-qwen2-vl", 32), ("tiny-qwen2.5-vl", 32)])
def test_r_zero_is_the_baseline_exactly(model, visual):
    b = bundle(model)
    inp = inputs(b)
    base = b.model(**inp).logits
    m = registry.create("tome", r=0)
    with m.apply(b.model) as s:
        out = b.model(**inp).logits
    assert torch.equal(out, base) and s.last.visual_after == s.last.visual_before == visual
    assert m.report["encoder_flops_saved"] == 0.0
    assert b.model.config.vision_config._attn_implementation == "sdpa"      # switched back on exit


def _naive_tome_tower(model, inp, r):
    """The official ToMe forward of the CLIP tower (blocks written out from their submodules)."""
    adapter = ModelAdapter.of(model)
    tower = adapter.vision_tower
    layers = vision_encoder_layers(adapter)
    x = tower.pre_layrnorm(tower.embeddings(inp["pixel_values"]))
    size = None
    outs = [x]
    for layer in layers:
        h = layer.layer_norm1(x)
        bias = None if size is None else size.log()[:, None, None, :, 0]
        a, _ = layer.self_attn(h, attention_mask=bias)
        x = x + a
        k = layer.self_attn.k_proj(h)
        metric = k.view(*k.shape[:2], layer.self_attn.num_heads, -1).mean(2)
        xm, sm = _naive_merge(x[0], (size[0] if size is not None else torch.ones(x.shape[1], 1)), metric[0], r)
        x, size = xm[None], sm[None]
        x = x + layer.mlp(layer.layer_norm2(x))
        outs.append(x)
    return outs


def test_hooked_blocks_equal_the_official_tome_block():
    b = bundle("tiny-llava")
    inp = inputs(b)
    r = 8
    want = _naive_tome_tower(b.model, inp, r)
    m = registry.create("tome", r=r)
    got = {}
    tower = ModelAdapter.of(b.model).vision_tower
    with m.apply(b.model):
        h = tower.register_forward_hook(lambda mod, args, out: got.setdefault("out", out))
        try:
            tower(inp["pixel_values"], output_hidden_states=True)
        finally:
            h.remove()
    hs = got["out"].hidden_states
    maps = m._state.maps
    for i in (1, 2):
        # the tower's outputs are unmerged to the 65 patch slots; re-merge with the groups to compare
        assert hs[i].shape[1] == 65
        groups = maps[i - 1][0]
        merged = torch.zeros(1, int(groups.max()) + 1, hs[i].shape[-1])
        merged[0, groups] = hs[i][0]
        torch.testing.assert_close(merged, want[i], atol=1e-5, rtol=1e-5)
    assert m.report["tokens_per_block"] == [65, 57] and m.report["merged_per_block"] == [8, 8]


def test_llm_gets_one_token_per_group_at_its_first_patch():
    b = bundle("tiny-llava")
    inp = inputs(b)
    m = registry.create("tome", r=8)
    with m.apply(b.model) as s:
        res = harness.greedy_generate(b.model, inp, max_new_tokens=4)
    assert len(res.tokens) == 4
    # LLaVA feeds the penultimate hidden state (block 0's output here): 65 - 8 tokens, CLS dropped -> 56
    assert s.last.visual_before == 64 and s.last.visual_after == 56 == m.report["visual_tokens_to_llm"]
    groups = m._state.maps[0][0, 1:] - 1                     # patch -> group (CLS is group 0)
    reps = sorted(int((groups == g).nonzero().min()) for g in groups.unique())
    layout = ModelAdapter.of(b.model).layout(inp["input_ids"], {})
    kept_positions = s.last.kept["pre_llm"].tolist()
    assert kept_positions == layout.visual_index[reps].tolist()
    assert m.report["encoder_flops_saved"] > 0 and m.report["encoder_ms"] > 0
    assert m.budget is None                                  # the per-request count does not leak out


def test_tome_rejects_budgets_and_other_families():
    with pytest.raises(ValueError, match="budget"):
        registry.create("tome", budget=32)
    b = bundle("tiny-llava-next")
    with pytest.raises(NotImplementedError, match="got llava_next"):
        with registry.create("tome").apply(b.model):
            pass


@pytest.mark.parametrize("model,tokens", [("tiny-llava", "64 -> 60"), ("tiny-qwen2-vl", "32 -> 24"),
                                          ("tiny-qwen2.5-vl", "32 -> 24")])
def test_cli_run_reports_tome(model, tokens, tmp_path, capsys):
    from lvlm_atlas.__main__ import main

    img = tmp_path / "x.png"
    noise_image(0).save(img)
    assert main(["run", "tome", "--model", model, "--image", str(img), "--prompt", "What?",
                 "--max-new-tokens", "3", "--param", "r=4"]) == 0
    out = capsys.readouterr().out
    assert f"visual tokens: {tokens}" in out and "encoder_flops_saved" in out


def test_cli_bench_reports_tome(tmp_path):
    from lvlm_atlas.__main__ import main

    res = tmp_path / "r.json"
    assert main(["bench", "--methods", "tome", "--models", "tiny-llava", "--budgets", "none", "--n", "1",
                 "--repeats", "1", "--warmup", "0", "--max-new-tokens", "2", "--param", "tome.r=4",
                 "--out", str(res), "--no-progress"]) == 0
    rows = json.loads(res.read_text())["results"]
    assert rows[1]["method"] == "tome" and rows[1]["visual_tokens_after"] == 60
    assert rows[1]["method_report"]["encoder_flops_saved"] > 0 and rows[1]["method_report"]["encoder_ms"] > 0


# --------------------------------------------------------------------------- Qwen2-VL's ViT (2x2 groups)
def _naive_merge_groups(x, size, rep, metric, r, win=None):
    """Bipartite soft matching without a class token, written with loops, on (N, ...) group rows; with `win`
    (window of every row) only rows of one window match, and the output is stably sorted by window.
    Returns merged rows, sizes, each output's first original group, output index of every input row, and
    the outputs' windows."""
    n = x.shape[0]
    win = [0] * n if win is None else [int(w) for w in win]
    m = [metric[i] / metric[i].norm() for i in range(n)]
    A, B = list(range(0, n, 2)), list(range(1, n, 2))
    best = []
    for a in A:
        sims = [float(m[a] @ m[b]) if win[a] == win[b] else -math.inf for b in B]
        j = max(range(len(B)), key=lambda t: sims[t])
        best.append((sims[j], j))
    r = min(r, n // 2, sum(1 for v, _ in best if v > -math.inf))
    order = sorted(range(len(A)), key=lambda ai: -best[ai][0])
    src = set(order[:r])
    unm = order[r:]             # without a class token the official keeps them in edge order (not re-sorted)
    rows, sizes, reps, wins, where = [], [], [], [], [0] * n
    for ai in unm:
        where[A[ai]] = len(rows)
        rows.append(x[A[ai]])
        sizes.append(float(size[A[ai]]))
        reps.append(int(rep[A[ai]]))
        wins.append(win[A[ai]])
    for j in range(len(B)):
        members = [B[j]] + [A[ai] for ai in src if best[ai][1] == j]
        w = sum(float(size[t]) for t in members)
        for t in members:
            where[t] = len(rows)
        rows.append(sum(x[t] * float(size[t]) for t in members) / w)
        sizes.append(w)
        reps.append(min(int(rep[t]) for t in members))
        wins.append(win[B[j]])
    perm = sorted(range(len(rows)), key=lambda i: wins[i])          # stable: windows contiguous
    rank = {old: new for new, old in enumerate(perm)}
    return (torch.stack([rows[i] for i in perm]), torch.tensor([sizes[i] for i in perm]),
            torch.tensor([reps[i] for i in perm]), torch.tensor([rank[w] for w in where]),
            [wins[i] for i in perm])


def _naive_attention(q, k, v, log_size, scale, win=None):
    """Per head, per query: softmax(q.k * scale + log size_j) over the keys j (of the query's window)."""
    n, heads, _ = q.shape
    out = torch.zeros_like(v)
    for h in range(heads):
        logits = (q[:, h] @ k[:, h].T) * scale + log_size[None, :]
        if win is not None:
            logits = logits.masked_fill(win[:, None] != win[None, :], -math.inf)
        out[:, h] = torch.softmax(logits, dim=-1) @ v[:, h]
    return out.reshape(n, -1)


def _naive_qwen_tome_tower(model, inp, r, pe0, windows=None):
    """ToMe on 2x2 groups in a Qwen2-VL-family ViT, from the blocks' own submodules (no hooks). `windows`:
    (raster group of every window-order slot, window of every slot, full-attention blocks) for Qwen2.5-VL."""
    adapter = ModelAdapter.of(model)
    tower = adapter.vision_tower
    u = 4
    x = tower.patch_embed(inp["pixel_values"])
    n_groups = x.shape[0] // u
    raster, win, full = windows if windows is not None else (torch.arange(n_groups), None, None)
    x = x.reshape(n_groups, u, -1)[raster].reshape(-1, x.shape[-1])
    slot_of = torch.argsort(raster)
    size, rep = torch.ones(n_groups), raster.clone()
    where_all = torch.arange(n_groups)                      # window-order slot -> current row
    for i, blk in enumerate(qwen_vision_blocks(adapter)):
        patches = (slot_of[rep][:, None] * u + torch.arange(u)).reshape(-1)
        pe = tuple(t[patches] for t in pe0)
        h = blk.norm1(x)
        q, k = qwen_vision_qk(blk.attn, h, pe)
        qkv = blk.attn.qkv(h).view(h.shape[0], 3, blk.attn.num_heads, -1)
        mask = None if win is None or i in full else torch.as_tensor(win).repeat_interleave(u)
        a = _naive_attention(q, k, qkv[:, 2], size.log().repeat_interleave(u), blk.attn.scaling, mask)
        x = x + blk.attn.proj(a)
        metric = qkv[:, 1].mean(1).reshape(-1, u * qkv.shape[-1])
        xg, size, rep, where, new_win = _naive_merge_groups(x.reshape(rep.numel(), -1), size, rep, metric, r, win)
        win = None if win is None else new_win
        where_all = where[where_all]
        x = xg.reshape(-1, x.shape[-1])
        x = x + blk.mlp(blk.norm2(x))
    return tower.merger(x)[where_all][slot_of], rep


def _qwen_pe0(model, inp):
    got = {}
    blk = qwen_vision_blocks(ModelAdapter.of(model))[0]
    h = blk.register_forward_pre_hook(lambda m, a, kw: got.setdefault("pe", kw["position_embeddings"]) and None,
                                      with_kwargs=True)
    try:
        model(**inp)
    finally:
        h.remove()
    return got["pe"]


def _windows(model, inp):
    from lvlm_atlas.methods.transformers_adapter import qwen25_full_attention_blocks, qwen25_windows

    vcfg = model.config.vision_config
    raster, cu = qwen25_windows(vcfg, inp["image_grid_thw"])
    counts = (cu[1:] - cu[:-1]).long() // 4
    win = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    return raster, win.tolist(), qwen25_full_attention_blocks(vcfg)


@pytest.mark.parametrize("name,r,windowed_only", [("tiny-qwen2-vl", 3, False), ("tiny-qwen2-vl", 8, False),
                                                  ("tiny-qwen2.5-vl", 3, False), ("tiny-qwen2.5-vl", 16, False),
                                                  ("tiny-qwen2.5-vl", 3, True), ("tiny-qwen2.5-vl", 5, True)])
def test_qwen_hooked_tower_equals_tome_on_merge_groups(name, r, windowed_only, monkeypatch):
    b = bundle(name)
    inp = inputs(b)
    if windowed_only:   # block 1 attends within windows too: windows of merged groups get exercised
        monkeypatch.setattr(b.model.config.vision_config, "fullatt_block_indexes", [])
        monkeypatch.setattr(ModelAdapter.of(b.model).vision_tower, "fullatt_block_indexes", [])
    pe0 = _qwen_pe0(b.model, inp)
    windows = _windows(b.model, inp) if name == "tiny-qwen2.5-vl" else None
    want, want_rep = _naive_qwen_tome_tower(b.model, inp, r, pe0, windows)
    m = registry.create("tome", r=r)
    got = {}
    tower = ModelAdapter.of(b.model).vision_tower
    with m.apply(b.model):
        # (get_image_features later replaces pooler_output by its per-image split: keep the tensor)
        h = tower.register_forward_hook(lambda mod, args, out: got.update(out=out.pooler_output))
        try:
            b.model(**inp)
        finally:
            h.remove()
    torch.testing.assert_close(got["out"], want, atol=1e-5, rtol=1e-5)
    assert m._qwen.keep.tolist() == sorted(want_rep.tolist())
    if windows is None:
        assert m.report["tokens_per_block"] == [32, 32 - r] and m.report["merged_per_block"] == [r, r]
    else:   # 8 windows of 4 groups: at most 2 merges per window and block
        merged = m.report["merged_per_block"]
        assert merged[0] == min(r, 16) and m.report["tokens_per_block"] == [32, 32 - merged[0]]


def test_qwen2_vl_proportional_attention_matches_a_naive_loop():
    b = bundle("tiny-qwen2-vl")
    blk = qwen_vision_blocks(ModelAdapter.of(b.model))[0]
    g = torch.Generator().manual_seed(3)
    n, c = 12, blk.attn.dim
    x = torch.randn(n, c, generator=g)
    hd = blk.attn.head_dim
    pe = (torch.randn(n, hd, generator=g), torch.randn(n, hd, generator=g))
    log_size = torch.randint(1, 5, (n,), generator=g).float().log()
    with registry.create("tome", r=2).apply(b.model):
        out = blk.attn(x, cu_seqlens=torch.tensor([0, n], dtype=torch.int32), position_embeddings=pe,
                       tome_log_size=log_size, tome_base="sdpa")
    q, k = qwen_vision_qk(blk.attn, x, pe)
    v = blk.attn.qkv(x).view(n, 3, blk.attn.num_heads, -1)[:, 2]
    rows = []
    for i in range(n):
        heads = []
        for h in range(blk.attn.num_heads):
            logits = [float(q[i, h] @ k[j, h]) * blk.attn.scaling + float(log_size[j]) for j in range(n)]
            mx = max(logits)
            w = [math.exp(t - mx) for t in logits]
            heads.append(sum(v[j, h] * (w[j] / sum(w)) for j in range(n)))
        rows.append(torch.cat(heads))
    torch.testing.assert_close(out, blk.attn.proj(torch.stack(rows)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-qwen2-vl", "tiny-qwen2.5-vl"])
def test_qwen_llm_gets_merged_count_at_consistent_mrope_positions(name):
    b = bundle(name)
    inp = inputs(b)
    E, P = decoder_inputs(b.model, inp)
    m = registry.create("tome", r=4)
    lm = ModelAdapter.of(b.model).language_model
    got = {}
    with m.apply(b.model) as s:
        h = lm.register_forward_pre_hook(lambda mod, a, kw: got.setdefault("kw", dict(kw)) and None, with_kwargs=True)
        try:
            b.model(**inp)
        finally:
            h.remove()
        res = harness.greedy_generate(b.model, inp, max_new_tokens=3)
    assert len(res.tokens) == 3
    assert s.last.visual_before == 32 and s.last.visual_after == 24 == m.report["visual_tokens_to_llm"]
    ids = inp["input_ids"][0]
    img = (ids == b.model.config.image_token_id).nonzero().squeeze(1)
    keep = m._qwen.keep
    seq = torch.sort(torch.cat([(ids != b.model.config.image_token_id).nonzero().squeeze(1), img[keep]])).values
    assert got["kw"]["inputs_embeds"].shape[1] == ids.numel() - 8
    assert torch.equal(got["kw"]["position_ids"], P[..., seq])
    # every kept token is its group's merged feature (the PatchMerger output of the merged group)
    assert s.last.kept["pre_llm"].tolist() == img[keep].tolist()
    assert m.report["encoder_flops_saved"] > 0 and m.budget is None


def test_qwen_refuses_video_requests(tmp_path):
    pytest.importorskip("av")
    from lvlm_atlas.methods import video

    clip = video.write_test_video(tmp_path / "c.mp4", num_frames=4)
    b = bundle("tiny-qwen2-vl")
    inp = video.video_inputs(b, video.read_frames(clip, 4), "What moves?")
    with registry.create("tome", r=2).apply(b.model):
        with pytest.raises(NotImplementedError, match="video requests are not supported"):
            b.model(**inp)


def test_cli_refuses_tome_on_llava_next_in_one_line(tmp_path, capsys):
    from lvlm_atlas.__main__ import main

    img = tmp_path / "x.png"
    noise_image(0).save(img)
    assert main(["run", "tome", "--model", "tiny-llava-next", "--image", str(img), "--prompt", "What?"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "got llava_next" in err[0]

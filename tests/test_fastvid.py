"""FastVID: dynamic temporal segmentation + density spatiotemporal pruning, against a naive re-statement of
the official rule (LunarShen/FastVID fastvid_qwen25vl/.../modeling_qwen2_5_vl.py @ a40a109), and end to end
on tiny-qwen2-vl video requests."""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers")

from lvlm_atlas.methods import harness, registry  # noqa: E402
from lvlm_atlas.methods.algorithms.fastvid import fastvid_select, frame_salience, temporal_segments  # noqa: E402
from tests.methods_util import bundle, decoder_inputs, noise_image  # noqa: E402


# --------------------------------------------------------------------------- naive official rule
def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _unit(v):
    s = math.sqrt(_dot(v, v))
    return [x / s for x in v]


def _official_cuts(sims, c, tau):
    """cut after frame i: the c-1 smallest similarities, and every one below tau (official topk + nonzero)."""
    order = sorted(range(len(sims)), key=lambda i: sims[i])
    cuts = set(order[: min(c - 1, len(sims))])
    for i in range(len(sims)):
        if sims[i] < tau:
            cuts.add(i)
    return sorted(cuts)


def _sizes(n, cuts):
    if not cuts:
        return [n]
    sizes = [cuts[0] + 1]
    for i in range(1, len(cuts)):
        sizes.append(cuts[i] - cuts[i - 1])
    sizes.append(n - cuts[-1] - 1)
    return sizes


def _official_counts(seg_sims, seg_len, frm_len, ratio, d, p, ignore):
    """The official per-segment salient / context allocation, statement by statement."""
    seg_retain_num = int(frm_len * ratio) * seg_len
    seg_context_num = max(int(seg_retain_num * d), 1)
    seg_salient_num = seg_retain_num - seg_context_num
    if seg_len == 1:
        return [seg_salient_num], [seg_context_num]
    cur_cut = [i for i in range(len(seg_sims)) if seg_sims[i] < ignore]
    cur_sizes = _sizes(seg_len, cur_cut)
    valid = len(cur_sizes)
    chunk, rem = seg_salient_num // valid, seg_salient_num % valid
    frm_sal = [chunk + (1 if i < rem else 0) for i in range(valid)]
    temp_num = (valid + p - 1) // p
    chunk, rem = seg_context_num // temp_num, seg_context_num % temp_num
    temp_ctx = [chunk + (1 if i < rem else 0) for i in range(temp_num)]
    idx, frm_ctx = 0, []
    for i in range(valid):
        if i % p == 0:
            frm_ctx.append(min(temp_ctx[idx], frm_len // 2))
            idx += 1
        else:
            frm_ctx.append(0)
    frm_ctx.reverse()
    sal, ctx = [], []
    for j in range(valid):
        sal += [0] * (cur_sizes[j] - 1)
        ctx += [0] * (cur_sizes[j] - 1)
        if frm_ctx[j] == 0:
            sal.append(min(frm_sal[j], frm_len))
            ctx.append(0)
        else:
            ctx.append(min(frm_ctx[j], frm_len // 2))
            sal.append(min(frm_sal[j], frm_len - ctx[-1]))
    return sal, ctx


def _official_dpc(pts, k):
    """density peaks among `pts` (lists): local density from the 4 nearest (self included), distance to denser."""
    m, dim = len(pts), len(pts[0])
    dist = [[math.sqrt(sum((a - b) ** 2 for a, b in zip(pts[i], pts[j]))) / math.sqrt(dim) for j in range(m)]
            for i in range(m)]
    dmax = max(max(row) for row in dist)
    dens = [math.exp(-sum(x * x for x in sorted(dist[i])[:4]) / min(4, m)) for i in range(m)]
    score = []
    for i in range(m):
        delta = dmax
        for j in range(m):
            if dens[j] > dens[i]:
                delta = min(delta, dist[i][j])
        score.append(delta * dens[i])
    return sorted(sorted(range(m), key=lambda i: -score[i])[:k])


def official_fastvid(frames, attn, ratio=0.27, c=8, tau=0.84, ignore=0.95, d=0.4, p=4, beta=0.6):
    """{global token index: merged vector} and the segment lengths, with plain Python loops."""
    T, N, D = frames.shape
    X = frames.tolist()
    A = attn.tolist()
    glob = [_unit([sum(X[t][i][e] for i in range(N)) / N for e in range(D)]) for t in range(T)]
    sims = [_dot(glob[t], glob[t + 1]) for t in range(T - 1)]
    segs = _sizes(T, _official_cuts(sims, c, tau))
    out, start = {}, 0
    for L in segs:
        sal, ctx = _official_counts(sims[start:start + L - 1], L, N, ratio, d, p, ignore)
        salient, anchors = [], []
        for f in range(L):
            top = sorted(range(N), key=lambda i: -A[start + f][i])[: sal[f]]
            salient += [f * N + i for i in top]
            if ctx[f] > 0:
                rest = [i for i in range(N) if i not in top]
                picked = _official_dpc([X[start + f][i] for i in rest], ctx[f])
                anchors.append([f * N + rest[i] for i in picked])
        flat = [X[start + i // N][i % N] for i in range(L * N)]
        for g in salient:
            out[start * N + g] = flat[g]
        for group in anchors:
            keep = set(salient) | set(group)
            members = {a: [] for a in group}
            for g in range(L * N):
                if g in keep:
                    continue
                u = _unit(flat[g])
                best = max(group, key=lambda a: (_dot(u, _unit(flat[a])), -group.index(a)))
                members[best].append(g)
            for a in group:
                cnt = len(members[a])
                w = max(1 / (cnt + 1), beta)
                mean = [sum(flat[g][e] for g in members[a]) / max(cnt, 1) for e in range(D)]
                out[start * N + a] = [w * flat[a][e] + (1 - w) * mean[e] for e in range(D)]
        start += L
    return out, segs


def _frames(T, N, D, seed, dup=()):
    """random frames; each (i, j) in dup makes frame j a near copy of frame i (a near-duplicate run)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, N, D, generator=g) + 0.7 * torch.randn(1, 1, D, generator=g)
    for i, j in dup:
        x[j] = x[i] + 0.01 * torch.randn(N, D, generator=g)
    return x, torch.rand(T, N, generator=g)


CASES = [
    dict(T=4, N=16, D=6, seed=0, dup=(), kw={}),                                         # c > T: every gap cut
    dict(T=10, N=16, D=6, seed=1, dup=((2, 3), (3, 4), (6, 7)), kw=dict(c=2, tau=0.0)),
    dict(T=12, N=20, D=5, seed=2, dup=((0, 1), (1, 2), (5, 6), (8, 9), (9, 10)), kw=dict(c=3, tau=0.2, ratio=0.3)),
    dict(T=9, N=12, D=4, seed=3, dup=(), kw=dict(c=1, tau=-1.0, ignore=2.0, p=2)),       # one segment, every frame its own run
    dict(T=8, N=16, D=6, seed=4, dup=((0, 1), (2, 3), (4, 5), (6, 7)), kw=dict(c=1, tau=-1.0, ratio=0.5, d=0.6)),
]


@pytest.mark.parametrize("case", CASES, ids=[f"T{c['T']}-{i}" for i, c in enumerate(CASES)])
def test_fastvid_keeps_and_merges_what_the_official_rule_does(case):
    frames, attn = _frames(case["T"], case["N"], case["D"], case["seed"], case["dup"])
    kw = dict(case["kw"])
    ratio = kw.pop("ratio", 0.27)
    want, want_segs = official_fastvid(frames, attn, ratio=ratio, **kw)
    keep, vec, segs = fastvid_select(frames, attn, ratio, **kw)
    assert segs == want_segs
    assert keep.tolist() == sorted(want)
    torch.testing.assert_close(vec, torch.tensor([want[i] for i in sorted(want)]), atol=1e-5, rtol=1e-5)


def test_segment_boundaries_follow_the_similarity_cuts():
    sims = [0.99, 0.5, 0.97, 0.96, 0.7, 0.98, 0.95]
    for c, tau in [(1, 0.9), (3, 0.0), (3, 0.9), (8, 0.0), (1, -1.0), (2, 0.6)]:
        assert temporal_segments(sims, c, tau) == _sizes(8, _official_cuts(sims, c, tau))
    assert temporal_segments(sims, 1, 0.9) == [2, 3, 3]
    assert temporal_segments([], 8, 0.84) == [1]


@pytest.mark.parametrize("ratio", [0.1, 0.27, 0.5])
def test_budget_is_respected(ratio):
    frames, attn = _frames(12, 24, 6, 7, ((0, 1), (4, 5), (5, 6)))
    keep, vec, segs = fastvid_select(frames, attn, ratio, c=3, tau=0.3)
    per_frame = int(24 * ratio)
    assert keep.numel() <= 12 * per_frame and keep.numel() == vec.shape[0]
    assert torch.unique(keep).numel() == keep.numel() and bool((keep[1:] > keep[:-1]).all())
    # single-frame segments keep exactly their frame's budget
    start = 0
    for L in segs:
        in_seg = ((keep >= start * 24) & (keep < (start + L) * 24)).sum()
        assert int(in_seg) <= L * per_frame
        if L == 1:
            assert int(in_seg) == per_frame
        start += L


def test_frame_salience_matches_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    T, N, G, H, hd = 3, 5, 4, 2, 3
    q, k = torch.randn(T * N * G, H, hd, generator=g), torch.randn(T * N * G, H, hd, generator=g)
    got = frame_salience(q, k, T, G)
    for t in range(T):
        rows = range(t * N * G, (t + 1) * N * G)
        for n in range(N):
            total = 0.0
            for h in range(H):
                qm = [sum(float(q[r, h, e]) for r in rows) / (N * G) for e in range(hd)]
                logits = []
                for m in range(N):
                    km = [sum(float(k[t * N * G + m * G + j, h, e]) for j in range(G)) / G for e in range(hd)]
                    logits.append(_dot(qm, km) / math.sqrt(hd))
                z = sum(math.exp(x) for x in logits)
                total += math.exp(logits[n]) / z
            assert abs(float(got[t, n]) - total / H) < 1e-5


# --------------------------------------------------------------------------- on the model
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    pytest.importorskip("av")
    from lvlm_atlas.methods import video

    return video.write_test_video(tmp_path_factory.mktemp("video") / "clip.mp4", num_frames=8)


def _inputs(name, clip):
    from lvlm_atlas.methods import video

    b = bundle(name)
    return b, video.video_inputs(b, video.read_frames(clip, 8), "What moves?")


@pytest.mark.parametrize("name", ["tiny-qwen2-vl", "tiny-qwen2.5-vl"])
def test_fastvid_on_video_equals_the_pruned_forward_and_keeps_positions(name, clip):
    b, inp = _inputs(name, clip)
    model = b.model
    E, P = decoder_inputs(model, inp)
    m = registry.create("fastvid")
    with m.apply(model) as s:
        out = model(**inp).logits[0, -1]
        res = harness.greedy_generate(model, inp, 3, None)
    # 4 temporal slices of 32 tokens, c=8 > 4: each slice is a segment keeping int(32 * 0.27) = 8 tokens
    assert s.last.visual_before == 128 and s.last.visual_after == 32 == m.report["visual_tokens_after"]
    assert m.report["segment_frames"] == [1, 1, 1, 1]
    ids = inp["input_ids"][0]
    vid = (ids == model.config.video_token_id).nonzero().squeeze(1)
    attn = m._req["attn"]
    keep, vec, _ = fastvid_select(E[0, vid].reshape(4, 32, -1), attn)
    want_map, _ = official_fastvid(E[0, vid].reshape(4, 32, -1), attn)
    assert keep.tolist() == sorted(want_map)
    mask = torch.ones(ids.numel(), dtype=torch.bool)
    mask[vid] = False
    mask[vid[keep]] = True
    seq = mask.nonzero().squeeze(1)
    E2 = E.clone()
    E2[0, vid[keep]] = vec
    want = model(inputs_embeds=E2[:, seq], position_ids=P[..., seq]).logits[0, -1]
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    # decoding continues the positions after the pruned prompt: recompute the second token without a cache
    t1 = int(want.argmax())
    assert res.tokens[0] == t1
    e1 = model.get_input_embeddings()(torch.tensor([[t1]]))
    p1 = P[..., seq].amax(-1, keepdim=True) + 1
    step = model(inputs_embeds=torch.cat([E2[:, seq], e1], 1), position_ids=torch.cat([P[..., seq], p1], -1))
    assert res.tokens[1] == int(step.logits[0, -1].argmax())


def test_fastvid_rejects_images_budgets_and_llava(clip):
    with pytest.raises(ValueError, match="budget"):
        registry.create("fastvid", budget=8)
    with pytest.raises(NotImplementedError, match="Qwen2-VL"):
        with registry.create("fastvid").apply(bundle("tiny-llava").model):
            pass
    b = bundle("tiny-qwen2-vl")
    with registry.create("fastvid").apply(b.model):
        with pytest.raises(ValueError, match="needs a video request"):
            b.model(**b.inputs(noise_image(0), "What is it?"))


def test_cli_run_fastvid_with_a_video(clip, tmp_path, capsys):
    from lvlm_atlas.__main__ import main

    assert main(["run", "fastvid", "--model", "tiny-qwen2-vl", "--video", str(clip), "--prompt", "What moves?",
                 "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "visual tokens: 128 -> 32" in out and "segments 4" in out
    img = tmp_path / "x.png"
    noise_image(0).save(img)
    assert main(["run", "fastvid", "--model", "tiny-qwen2-vl", "--image", str(img), "--prompt", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fastvid needs video input" in err[0]
    assert main(["bench", "--methods", "fastvid", "--models", "tiny-qwen2-vl", "--budgets", "none", "--n", "1",
                 "--out", str(tmp_path / "r.json"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "add --workload video-clip" in err[0] and not (tmp_path / "r.json").exists()


def test_keeping_every_token_is_the_baseline(clip):
    b, inp = _inputs("tiny-qwen2-vl", clip)
    base = b.model(**inp).logits[0, -1]
    m = registry.create("fastvid", retention_ratio=1.0, d=0.0)    # every token salient but one anchor, which absorbs nothing
    with m.apply(b.model) as s:
        out = b.model(**inp).logits[0, -1]
    assert s.last.visual_after == s.last.visual_before == 128
    torch.testing.assert_close(out, base, atol=1e-6, rtol=1e-6)

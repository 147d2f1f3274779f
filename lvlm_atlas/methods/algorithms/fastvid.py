"""FastVID (Shen et al., NeurIPS 2025, arXiv 2503.11187): dynamic density pruning of video tokens.

Applied to the LLM-input video tokens of a Qwen2-VL / Qwen2.5-VL video request (one "frame" is one
temporal slice of h*w/4 tokens, two video frames), before the first decoder layer:

1. Dynamic temporal segmentation: each frame's global feature (the mean of its tokens) is compared
   (cosine) with the next frame's; the video is cut after every frame whose similarity is below `tau`,
   and after the `c - 1` least similar frames in any case, so there are at least `c` segments.
2. Per segment, a token budget of int(N * retention_ratio) per frame, a share `d` of it "context"
   tokens (at least one) and the rest "salient" tokens. Within a segment of more than one frame, runs of
   near-duplicate frames (neighbour similarity >= `ignore`) are represented by their last frame only:
   salient tokens are spread evenly over these representatives, context tokens over every `p`-th one
   (counted from the end), at most N/2 context tokens per frame.
3. Salient tokens: the top tokens of a frame by the attention its mean query pays them in the vision
   tower's last block (keys averaged over each 2x2 merge group, heads averaged).
4. Context tokens: density peaks (DPC-kNN) among a frame's other tokens: local density from the 4
   nearest neighbours, times the distance to the nearest denser token; the top-scoring tokens become
   anchors. Every token of the segment that is neither salient nor one of this frame's anchors is
   assigned to its most similar anchor (cosine), and each anchor becomes a weighted mix of itself and
   the mean of its assigned tokens (anchor weight max(1 / (count + 1), `beta`)).

Survivors keep their sequence order and their 3-D M-RoPE positions; the sequence is physically shortened.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch

from lvlm_atlas.methods.algorithms._common import PrunedVideoRequest, require_video_family
from lvlm_atlas.methods.base import Method
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.session import shorten_prefill
from lvlm_atlas.methods.stages import Stage


# --------------------------------------------------------------------------- the rule (plain functions)
def runs_after_cuts(n: int, cuts) -> list[int]:
    """Lengths of the runs of `n` items cut after each index in `cuts` (indices into the n-1 gaps)."""
    sizes, start = [], 0
    for c in sorted(set(int(c) for c in cuts)):
        sizes.append(c + 1 - start)
        start = c + 1
    sizes.append(n - start)
    return sizes


def temporal_segments(sims: list[float], c: int, tau: float) -> list[int]:
    """Dynamic temporal segmentation: segment lengths from the n-1 neighbour similarities of n frames."""
    n = len(sims) + 1
    forced = sorted(range(len(sims)), key=lambda i: sims[i])[:max(0, min(int(c) - 1, len(sims)))]
    cuts = set(forced) | {i for i, s in enumerate(sims) if s < tau}
    return runs_after_cuts(n, cuts)


def _even(total: int, parts: int) -> list[int]:
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def frame_budgets(seg_sims: list[float], n_tokens: int, retention: float, d: float, p: int,
                  ignore: float) -> tuple[list[int], list[int]]:
    """Salient and context token counts of each frame of one segment (`seg_sims`: its len-1 similarities)."""
    length = len(seg_sims) + 1
    retain = int(n_tokens * retention) * length
    context = max(int(retain * d), 1)
    salient = retain - context
    if length == 1:
        return [salient], [context]
    runs = runs_after_cuts(length, [i for i, s in enumerate(seg_sims) if s < ignore])
    m = len(runs)
    sal = _even(salient, m)
    groups = _even(context, (m + p - 1) // p)
    ctx = [min(groups[i // p], n_tokens // 2) if i % p == 0 else 0 for i in range(m)][::-1]
    sal_f, ctx_f = [], []
    for run, s, cx in zip(runs, sal, ctx):
        sal_f += [0] * (run - 1)
        ctx_f += [0] * (run - 1)
        ctx_f.append(min(cx, n_tokens // 2))
        sal_f.append(min(s, n_tokens - ctx_f[-1]))
    return sal_f, ctx_f


def density_peaks(x: torch.Tensor, k: int, neighbours: int = 4) -> torch.Tensor:
    """DPC-kNN: indices (ascending) of the `k` tokens of x (M, D) with the highest density x distance score."""
    m, dim = x.shape
    x = x.float()
    dist = torch.cdist(x[None], x[None])[0] / dim ** 0.5
    near = dist.topk(min(neighbours, m), dim=-1, largest=False).values
    density = (-(near ** 2).mean(-1)).exp()
    denser = density[None, :] > density[:, None]                       # [i, j]: j is denser than i
    delta = torch.where(denser, dist, dist.max()).min(-1).values
    return (delta * density).topk(k).indices.sort().values


def compress_segment(x: torch.Tensor, attn: torch.Tensor, sal: list[int], ctx: list[int],
                     beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One segment (S, N, D) with frame attention (S, N): (kept indices into S*N ascending, their vectors)."""
    s_len, n, dim = x.shape
    dev = x.device
    flat = x.reshape(s_len * n, dim)
    salient, anchors = [], []
    for f in range(s_len):
        top = attn[f].topk(sal[f]).indices if sal[f] > 0 else torch.empty(0, dtype=torch.long, device=dev)
        if top.numel():
            salient.append(top + f * n)
        if ctx[f] > 0:
            taken = torch.zeros(n, dtype=torch.bool, device=dev)
            taken[top] = True
            rest = torch.argsort(taken.to(torch.int8), stable=True)[: n - top.numel()]   # untaken, ascending
            anchors.append(rest[density_peaks(x[f, rest], ctx[f])] + f * n)
    sal_idx = torch.cat(salient) if salient else torch.empty(0, dtype=torch.long, device=dev)
    unit = flat / flat.norm(dim=-1, keepdim=True)
    merged = []
    for a in anchors:
        retained = torch.zeros(s_len * n, dtype=torch.bool, device=dev)
        retained[sal_idx] = True
        retained[a] = True
        choice = (unit @ unit[a].T).argmax(-1)
        onehot = torch.zeros(s_len * n, a.numel(), dtype=flat.dtype, device=dev)
        onehot.scatter_(1, choice[:, None], 1)
        onehot = onehot * (~retained)[:, None].to(flat.dtype)
        count = onehot.sum(0)[:, None]
        w = (1 / (count + 1)).clamp(min=beta)
        mean = onehot.T @ flat / count.clamp(min=1)
        merged.append(w * flat[a] + (1 - w) * mean)
    idx = torch.cat([sal_idx] + anchors)
    vec = torch.cat([flat[sal_idx]] + merged)
    order = torch.argsort(idx)
    return idx[order], vec[order]


def fastvid_select(frames: torch.Tensor, attn: torch.Tensor, retention: float = 0.27, c: int = 8,
                   tau: float = 0.84, ignore: float = 0.95, d: float = 0.4, p: int = 4,
                   beta: float = 0.6) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """FastVID on (T, N, D) frame tokens with (T, N) salience: (kept indices into T*N, vectors, segment lengths)."""
    t, n, _ = frames.shape
    g = frames.float().mean(1)
    g = g / g.norm(dim=-1, keepdim=True)
    sims = (g[:-1] * g[1:]).sum(-1).tolist()          # the one host read: segment structure is data-dependent
    segs = temporal_segments(sims, c, tau)
    idx, vec, start = [], [], 0
    for length in segs:
        sal, ctx = frame_budgets(sims[start:start + length - 1], n, retention, d, p, ignore)
        i, v = compress_segment(frames[start:start + length], attn[start:start + length], sal, ctx, beta)
        idx.append(i + start * n)
        vec.append(v)
        start += length
    return torch.cat(idx), torch.cat(vec), segs


def frame_salience(q: torch.Tensor, k: torch.Tensor, t: int, group: int) -> torch.Tensor:
    """(T, N) attention of each frame's mean query over its merge-group-averaged keys, heads averaged.

    q, k: (T * N * group, heads, head_dim) rotary-embedded vision queries/keys of one video, frame-major."""
    _, heads, hd = q.shape
    qm = q.float().reshape(t, -1, heads, hd).mean(1)                   # (T, H, hd)
    km = k.float().reshape(t, -1, group, heads, hd).mean(2)            # (T, N, H, hd)
    logits = torch.einsum("thd,tnhd->thn", qm, km) / hd ** 0.5
    return logits.softmax(-1).mean(1)


# --------------------------------------------------------------------------- the method
@register("fastvid")
@dataclass
class FastVID(PrunedVideoRequest, Method):
    retention_ratio: float = 0.27   # tokens kept per frame (share); the official Qwen2.5-VL setting
    c: int = 8                      # DySeg: at least c segments (the c-1 least similar frame pairs are cut)
    tau: float = 0.84               # DySeg: cut where neighbour similarity is below tau
    ignore: float = 0.95            # near-duplicate frames (similarity >= ignore) inside a segment share one frame's tokens
    d: float = 0.4                  # STPrune: share of the retained tokens that are density (context) tokens
    p: int = 4                      # DTM: context tokens go to every p-th representative frame
    beta: float = 0.6               # DTM: minimum weight of an anchor in its merged vector

    stage: ClassVar[Stage] = Stage.PRE_LLM
    budget_driven: ClassVar[bool] = False   # the kept count follows from retention_ratio
    needs_video: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self):
        if self.budget is not None:
            raise ValueError("fastvid is set by retention_ratio (share of each frame's tokens kept); leave budget unset")
        if not 0.0 < float(self.retention_ratio) <= 1.0:
            raise ValueError(f"retention_ratio must lie in (0, 1], got {self.retention_ratio}")
        if int(self.c) < 1 or int(self.p) < 1:
            raise ValueError("c and p must be >= 1")
        if not 0.0 <= float(self.d) <= 1.0 or not 0.0 <= float(self.beta) <= 1.0:
            raise ValueError("d and beta must lie in [0, 1]")
        self.report: dict = {}

    def install(self, session) -> None:
        from lvlm_atlas.methods.transformers_adapter import qwen_vision_blocks

        a = session.adapter
        require_video_family("fastvid", a)
        self._session, self._adapter = session, a
        self._req: dict | None = None
        cfg = a.model.config
        self._video_id = int(cfg.video_token_id)
        self._merge = int(cfg.vision_config.spatial_merge_size)
        session.add_forward_pre_hook(a.mm, self._on_mm)
        session.add_forward_pre_hook(a.language_model, self._on_lm)
        session.add_forward_hook(qwen_vision_blocks(a)[-1].attn, self._salience, with_kwargs=True)

    def _on_mm(self, module, args, kwargs):
        from lvlm_atlas.methods.transformers_adapter import past_length

        if past_length(kwargs) > 0:
            return None
        ids = kwargs.get("input_ids", args[0] if args else None)
        grid = kwargs.get("video_grid_thw")
        if grid is None or kwargs.get("pixel_values_videos") is None:
            raise ValueError("fastvid needs a video request (atlas run fastvid --video FILE); this one has no video")
        if kwargs.get("pixel_values") is not None or grid.shape[0] != 1:
            raise NotImplementedError("fastvid supports one video per request, without images")
        if ids is None or ids.shape[0] != 1:
            raise NotImplementedError("fastvid supports batch size 1 with input_ids only")
        self._req = {"ids": ids, "grid": grid, "attn": None}
        return None

    def _salience(self, module, args, kwargs, output):
        """Last vision block (video call): the frame-level attention the official code uses as salience."""
        from lvlm_atlas.methods.transformers_adapter import qwen25_window_order, qwen_vision_qk

        req = self._req
        if req is None or req.get("attn") is not None:
            return None
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        q, k = qwen_vision_qk(module, hidden, kwargs["position_embeddings"])
        t = int(req["grid"][0, 0])
        unit = self._merge * self._merge
        attn = frame_salience(q, k, t, unit)
        if self._adapter.family == "qwen2_5_vl":     # window order (of merge groups) -> prompt order
            order = qwen25_window_order(self._adapter.model.config.vision_config, req["grid"]).to(attn.device)
            attn = attn.reshape(-1)[order].reshape(t, -1)
        req["attn"] = attn
        return None

    def _prefill(self, req: dict, kwargs: dict) -> dict:
        if req["attn"] is None:
            raise RuntimeError("fastvid: the vision tower did not run through the FastVID hooks for this request")
        embeds = kwargs["inputs_embeds"]
        dev = embeds.device
        L = embeds.shape[1]
        ids = req["ids"][0].to(dev)
        vid = (ids == self._video_id).nonzero().squeeze(1)
        t, h, w = (int(x) for x in req["grid"][0].tolist())
        n = h * w // (self._merge * self._merge)
        frames = embeds[0, vid].reshape(t, n, -1)
        t0 = time.perf_counter()
        with torch.profiler.record_function("atlas.method"):   # attributed by `atlas bench --profile`
            keep, vec, segs = fastvid_select(frames, req["attn"].to(dev), float(self.retention_ratio), int(self.c),
                                             float(self.tau), float(self.ignore), float(self.d), int(self.p),
                                             float(self.beta))
        overhead = time.perf_counter() - t0
        kept_pos = vid[keep]
        mask = torch.ones(L, dtype=torch.bool, device=dev)
        mask[vid] = False
        mask[kept_pos] = True
        keep_seq = torch.argsort((~mask).to(torch.int8), stable=True)[: L - vid.numel() + keep.numel()]
        embeds = embeds.clone()
        embeds[0, kept_pos] = vec.to(embeds.dtype)
        kwargs["inputs_embeds"] = embeds
        if kwargs.get("position_ids") is None:
            raise RuntimeError("fastvid: expected M-RoPE position ids at the decoder input")
        req.update(keep_seq=keep_seq, lm_len=L, next_pos=shorten_prefill(kwargs, keep_seq))
        before, after = int(vid.numel()), int(keep.numel())
        stats = self._session.last
        if stats is not None:
            stats.visual_before, stats.visual_after = before, after
            stats.method_overhead_s += overhead
        self.report = {"visual_tokens_before": before, "visual_tokens_after": after, "segments": len(segs),
                       "segment_frames": segs}
        return kwargs

"""LLaVA-PruMerge+ (Shang et al., 2024): keep attention outliers plus spatially uniform samples, then
fold the information of pruned tokens into the kept ones.

Official rule (github.com/42Shawn/LLaVA-PruMerge, llava/model/multimodal_encoder/clip_encoder.py,
token_prune_merge_advanced_plus), the default here (`budget=None`, LLaVA-1.5):
1. CLS attention from the LAST CLIP layer's q/k projections, as one head over all channels
   (softmax(q k^T / sqrt(C)), CLS row, patches only).
2. Adaptive count: r = share of patches whose CLS attention is an interquartile-range outlier
   (> Q3 + 1.5 IQR); the top int(N r) patches by CLS attention are kept, plus the patches
   0, s, 2s, ... < 575 (s = int(int(1 / r) / 3)) not already kept.
3. Merge (on the feature-layer output, before the projector): each kept patch becomes itself plus the
   CLS-attention-weighted SUM of its 32 most key-similar other patches (kept or not; cosine of the last
   layer's keys), and one extra token, the attention-weighted sum of all non-kept patches, is appended.
Here the extra token is fed in the row of the first visual token not otherwise kept; kept tokens keep
their rows and original positions (officially the tokens are packed in selection order and numbered
consecutively).

With a fixed budget (any `budget`, and on LLaVA-NeXT / Qwen2-VL, where the last-layer signal is not
aligned with the packed tokens) the budgeted variant runs: tokens scored by the CLS attention of the
feature layer (heads averaged; Qwen: mean received attention), outliers first by attention, evenly
spread samples of the rest fill the budget, and each kept token becomes the attention-weighted average
of itself and its `neighbours` most similar tokens (cosine of the feature layer's keys) on the
projected embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lvlm_atlas.methods.base import Method, PrefillContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage
from lvlm_atlas.methods.algorithms._common import uniform_indices


def iqr_outliers(score: torch.Tensor) -> torch.Tensor:
    q1, q3 = torch.quantile(score.float(), torch.tensor([0.25, 0.75], device=score.device))
    return (score > q3 + 1.5 * (q3 - q1)).nonzero().squeeze(1)


def official_indices(att: torch.Tensor) -> torch.Tensor:
    """PruMerge+'s adaptive selection: top int(N r) by attention (descending), then the arithmetic
    samples not already chosen (ascending). With r = 0 (no outlier) the official code divides by zero;
    here the samples then use step 1 (every token: nothing is pruned)."""
    n = att.shape[0]
    r = iqr_outliers(att).numel() / n
    top = torch.topk(att, int(n * r)).indices if r > 0 else att.new_zeros(0, dtype=torch.long)
    step = max(1, int(int(1 / r) / 3)) if r > 0 else 1
    samples = torch.arange(0, 575 if n == 576 else n - 1, step, device=att.device)
    taken = torch.zeros(n, dtype=torch.bool, device=att.device)
    taken[top] = True
    return torch.cat([top, samples[~taken[samples]]])


@register("prumerge_plus")
@dataclass
class PruMergePlus(Method):
    neighbours: int = 32
    adaptive = True        # budget=None: the official adaptive count (the session lets the method decide)

    stage = Stage.VISION
    needs = frozenset({"vision_attention"})

    def select(self, ctx: PrefillContext) -> Selection:
        v = ctx.vision
        if (self.budget is None and "cls_attention_last" in v and "features" in v and ctx.project is not None):
            return self._official(ctx)
        if self.budget is None:
            n = v["attention"].shape[0]
            return Selection(keep=torch.arange(n, device=v["attention"].device))   # no official rule here
        return self._budgeted(ctx)

    def _official(self, ctx: PrefillContext) -> Selection:
        v = ctx.vision
        att, keys, feats = v["cls_attention_last"], v["keys_last"].float(), v["features"].float()
        n = att.shape[0]
        idx = official_indices(att)
        kn = F.normalize(keys, dim=-1)
        sim = kn[idx] @ kn.T                                           # (k, n)
        sim[torch.arange(idx.numel(), device=att.device), idx] = -float("inf")   # never itself
        nb = torch.topk(sim, min(self.neighbours, n - 1), dim=1).indices
        merged = feats[idx] + torch.einsum("km,kmd->kd", att[nb].float(), feats[nb])
        rest = torch.ones(n, dtype=torch.bool, device=att.device)
        rest[idx] = False
        extra = (feats[rest] * att[rest].float()[:, None]).sum(0, keepdim=True)
        slot = rest.nonzero()[:1, 0]
        if slot.numel() == 0:                                          # everything kept: no extra token
            out = ctx.project(merged.to(v["features"].dtype).unsqueeze(0))[0]
            return Selection(keep=idx, embeds=out.to(ctx.visual_embeds.dtype))
        out = ctx.project(torch.cat([merged, extra]).to(v["features"].dtype).unsqueeze(0))[0]
        return Selection(keep=torch.cat([idx, slot]), embeds=out.to(ctx.visual_embeds.dtype))

    def _budgeted(self, ctx: PrefillContext) -> Selection:
        att, keys = ctx.vision["attention"], ctx.vision["keys"]
        emb = ctx.visual_embeds
        n, k = att.shape[0], ctx.keep
        out = iqr_outliers(att)
        out = out[torch.argsort(att[out], descending=True)][:k]
        if out.numel() < k:
            mask = torch.ones(n, dtype=torch.bool, device=att.device)
            mask[out] = False
            rest = mask.nonzero().squeeze(1)
            out = torch.cat([out, rest[uniform_indices(rest.numel(), k - out.numel(), device=att.device)]])
        kn = F.normalize(keys.float(), dim=-1)
        sim = kn[out] @ kn.T                                          # (k, n)
        nb = torch.topk(sim, min(self.neighbours + 1, n), dim=1).indices  # includes the token itself
        w = att[nb].float()                                           # (k, m)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        merged = torch.einsum("km,kmd->kd", w, emb[nb].float()).to(emb.dtype)
        return Selection(keep=out, embeds=merged)

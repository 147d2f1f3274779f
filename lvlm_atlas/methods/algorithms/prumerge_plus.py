"""LLaVA-PruMerge+ (Shang et al., 2024): keep attention outliers plus spatially uniform samples, then
fold the information of pruned tokens into the kept ones.

1. Score each visual token by the CLS attention it receives in the vision layer feeding the projector
   (Qwen2-VL: mean received attention, no CLS token).
2. PruMerge: tokens whose score is an outlier by the interquartile-range rule (> Q3 + 1.5 IQR) are kept.
   PruMerge+: spatially uniform samples of the remaining tokens are added. With a fixed budget, the
   highest-scoring outliers come first and uniform samples fill the rest.
3. Merge: each kept token becomes the attention-weighted average of itself and its `neighbours` most
   similar tokens (cosine of vision-layer keys).
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


@register("prumerge_plus")
@dataclass
class PruMergePlus(Method):
    neighbours: int = 32

    stage = Stage.VISION
    needs = frozenset({"vision_attention"})

    def select(self, ctx: PrefillContext) -> Selection:
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

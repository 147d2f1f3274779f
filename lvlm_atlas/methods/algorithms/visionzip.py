"""VisionZip (Yang et al., CVPR 2025): keep the few visual tokens the vision encoder itself attends to,
plus a handful of merged "contextual" tokens.

1. Dominant tokens: the tokens receiving the most attention from the CLS token in the vision layer
   whose output feeds the projector (heads averaged). On Qwen2-VL, which has no CLS token, the mean
   attention a token receives in the last vision block is used instead.
2. Contextual tokens: among the remaining tokens, evenly spaced targets are chosen; every other
   remaining token is merged (averaged) into the target whose vision-layer key is most similar.
Budget = dominant + contextual; by default contextual = budget * 10/64 (the paper's 54+10, 108+20,
162+30 splits for 64/128/192 tokens).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import Method, PrefillContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage
from lvlm_atlas.methods.algorithms._common import merge_into_nearest, uniform_indices


@register("visionzip")
@dataclass
class VisionZip(Method):
    contextual_ratio: float = 10 / 64

    stage = Stage.VISION
    needs = frozenset({"vision_attention"})

    def select(self, ctx: PrefillContext) -> Selection:
        att, keys = ctx.vision["attention"], ctx.vision["keys"]
        emb = ctx.visual_embeds
        n, k = att.shape[0], ctx.keep
        n_ctx = min(int(round(k * self.contextual_ratio)), k - 1) if k > 1 else 0
        n_dom = k - n_ctx
        dominant = torch.topk(att, n_dom).indices
        rest_mask = torch.ones(n, dtype=torch.bool, device=att.device)
        rest_mask[dominant] = False
        rest = rest_mask.nonzero().squeeze(1)
        if n_ctx == 0 or rest.numel() == 0:
            return Selection(keep=dominant)
        targets = rest[uniform_indices(rest.numel(), n_ctx, device=att.device)]
        others_mask = rest_mask.clone()
        others_mask[targets] = False
        others = others_mask.nonzero().squeeze(1)
        merged = merge_into_nearest(targets, others, keys, emb)
        keep = torch.cat([dominant, targets])
        embeds = torch.cat([emb[dominant], merged])
        return Selection(keep=keep, embeds=embeds)

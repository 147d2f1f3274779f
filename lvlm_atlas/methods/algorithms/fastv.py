"""FastV (Chen et al., 2024): after layer K, drop the visual tokens that receive the least attention.

Signal: the attention the last prompt token pays to each visual token in layer K-1, averaged over heads
(recomputed for that single query row from layer K-1's q/k projections; the model stays on SDPA).
The surviving tokens keep their positions; the dropped ones are removed from the sequence (and from
the KV cache of layers >= K) for the rest of the forward pass and for decoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import AttentionGuidedMethod, LayerContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage


@register("fastv")
@dataclass
class FastV(AttentionGuidedMethod):
    k: int = 2                   # prune at the input of layer K (0-based), scored with layer K-1 attention
    budget: int | float | None = 0.5   # the paper's R=50% at K=2 keeps half of the visual tokens

    stage = Stage.IN_LLM

    def prune_layers(self, num_layers: int) -> list[int]:
        return [self.k]

    def select_in_llm(self, ctx: LayerContext) -> Selection:
        row = torch.tensor([ctx.last_row])
        attn = ctx.received(row)                              # (heads, T): that one row's attention
        score = attn[:, ctx.visual_rows].mean(0)
        return Selection(keep=torch.topk(score, ctx.keep, sorted=False).indices)

"""PyramidDrop (Xing et al., CVPR 2025): drop visual tokens progressively, stage by stage.

The decoder is split into stages; at the end of each of the first stages a fraction (1 - ratio) of the
remaining visual tokens is dropped, ranked by the attention the last instruction token pays to them
(heads averaged, recomputed for that one query row). Default stage boundaries: 1/4, 1/2, 3/4 of the
depth (layers 8, 16, 24 of LLaVA-1.5-7B), ratio 0.5.
Budget: if given, the visual tokens kept after the first boundary; later boundaries keep `ratio` of
what is left. Without a budget the first boundary also keeps `ratio`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import AttentionGuidedMethod, LayerContext, Selection
from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage


@register("pyramiddrop")
@dataclass
class PyramidDrop(AttentionGuidedMethod):
    layers: tuple[int, ...] | None = None   # pruning layers; default quarter points of the depth
    ratio: float = 0.5                      # lambda: fraction kept at each boundary

    stage = Stage.IN_LLM

    def prune_layers(self, num_layers: int) -> list[int]:
        if self.layers:
            return sorted(int(x) for x in self.layers)
        pts = sorted({max(1, min(num_layers - 1, round(num_layers * f))) for f in (0.25, 0.5, 0.75)})
        return pts

    def keep_at(self, stage_index: int, n_visual_now: int, n_visual_total: int) -> int:
        first = resolve_budget(self.budget if self.budget is not None else self.ratio, n_visual_total)
        if first >= n_visual_total:
            return n_visual_now          # a no-op budget disables every stage
        if stage_index == 0:
            return first
        return max(1, int(math.ceil(n_visual_now * self.ratio)))

    def select_in_llm(self, ctx: LayerContext) -> Selection:
        attn = ctx.received(torch.tensor([ctx.last_row]))   # (heads, T): the last row's attention
        score = attn[:, ctx.visual_rows].mean(0)
        return Selection(keep=torch.topk(score, ctx.keep, sorted=False).indices)

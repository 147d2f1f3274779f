"""SparseVLM (Zhang et al., ICML 2025): text-guided visual token sparsification inside the LLM.

At a pruning layer:
1. Raters: the prompt's text tokens after the image whose mean attention to the visual tokens is at
   least the average over those text tokens (text relevant to the image).
2. Significance of each visual token: attention from the raters, averaged over raters and heads
   (recomputed for the rater rows only from the previous layer's q/k projections).
3. The most significant visual tokens are kept.
4. Recycling: the top `recycle_ratio` of the deleted tokens (by significance) are not discarded but
   averaged, significance-weighted, into the kept token whose hidden state is most similar.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import AttentionGuidedMethod, LayerContext, Selection
from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage
from lvlm_atlas.methods.algorithms._common import merge_into_nearest


@register("sparsevlm")
@dataclass
class SparseVLM(AttentionGuidedMethod):
    layers: tuple[int, ...] | None = None   # default: layer 2 (of 32) scaled to the model's depth
    later_ratio: float = 1.0                # fraction kept at each later pruning layer (1.0: single shot)
    recycle_ratio: float = 0.3

    stage = Stage.IN_LLM

    def prune_layers(self, num_layers: int) -> list[int]:
        if self.layers:
            return sorted(int(x) for x in self.layers)
        return [max(1, min(num_layers - 1, 2 if num_layers >= 16 else 1))]

    def keep_at(self, stage_index: int, n_visual_now: int, n_visual_total: int) -> int:
        first = resolve_budget(self.budget, n_visual_total)
        if first >= n_visual_total:
            return n_visual_now          # a no-op budget disables every pruning layer
        if stage_index == 0:
            return first
        return max(1, int(math.ceil(n_visual_now * self.later_ratio)))

    @staticmethod
    def raters(ctx: LayerContext) -> torch.Tensor:
        """Rows of the text tokens after the image whose mean attention to the visual tokens is at least
        the average over those text tokens (heads averaged)."""
        text = ctx.text_rows_after_image
        if text.numel() == 0:
            text = torch.tensor([ctx.last_row])
        # mean over visual tokens of the heads-averaged attention = (mass on visual keys) / n_visual
        relevance = ctx.mass_to(text, ctx.visual_rows).mean(0) / ctx.visual_rows.numel()   # (n_text,)
        return text[relevance.to(text.device) >= relevance.mean()]

    def select_in_llm(self, ctx: LayerContext) -> Selection:
        raters = self.raters(ctx)
        # significance: attention from the raters, averaged over raters and heads
        score = ctx.received(raters)[:, ctx.visual_rows].mean(0) / raters.numel()   # (n_visual,)
        keep = torch.topk(score, ctx.keep).indices
        n = score.numel()
        dropped_mask = torch.ones(n, dtype=torch.bool, device=score.device)
        dropped_mask[keep] = False
        dropped = dropped_mask.nonzero().squeeze(1)
        n_rec = int(round(dropped.numel() * self.recycle_ratio))
        if n_rec == 0:
            return Selection(keep=keep)
        recycled = dropped[torch.topk(score[dropped], n_rec).indices]
        hid = ctx.hidden[0, ctx.visual_rows]
        merged = merge_into_nearest(keep, recycled, hid, hid, weights=score)
        return Selection(keep=keep, embeds=merged)

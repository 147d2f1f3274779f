"""PyramidDrop (Xing et al., CVPR 2025): drop visual tokens progressively, stage by stage.

Official rule (github.com/Cooperx521/PyramidDrop, llava/model/modeling_llama_pdrop.py): at each boundary
layer l of `layer_list` (default 8, 16, 24 of LLaVA-1.5-7B's 32 layers), after layer l-1 has run, the
visual tokens still present are ranked by the attention the last instruction token pays them in layer
l ITSELF (layer l's input norm and q/k projections applied to its input, rotary positions as they are
now, causal softmax, heads averaged), and the top `int(N * ratio**(s+1))` survive at the s-th boundary
(N: visual tokens of the image). The sequence is then renumbered 0..n-1 and decoding continues from
there. Both are the defaults here (`score_layer="own"`, `renumber_positions=True`); the
`score_layer="previous"` / `renumber_positions=False` variant ranks with layer l-1's attention and
keeps the original positions (this project's first implementation).
Budget: if given, the visual tokens kept after the first boundary, and later boundaries keep
`floor(budget * ratio**s)`; without a budget the official `int(N * ratio**(s+1))` counts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import AttentionGuidedMethod, LayerContext, Selection
from lvlm_atlas.methods.budget import EPS, resolve_budget
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage


def default_layers(num_layers: int) -> list[int]:
    """The official boundaries 8, 16, 24 of 32 layers: the quarter points of the depth."""
    return sorted({max(1, min(num_layers - 1, round(num_layers * f))) for f in (0.25, 0.5, 0.75)})


@register("pyramiddrop")
@dataclass
class PyramidDrop(AttentionGuidedMethod):
    layers: tuple[int, ...] | None = None   # pruning layers; default quarter points of the depth
    ratio: float = 0.5                      # lambda: fraction kept at each boundary
    score_layer: str = "own"                # "own": the boundary layer's attention (official); "previous"
    renumber_positions: bool = True         # renumber 0..n-1 after each drop (official; 1-D RoPE models)

    stage = Stage.IN_LLM

    def __post_init__(self):
        super().__post_init__()
        if self.score_layer not in ("own", "previous"):
            raise ValueError(f"score_layer must be 'own' or 'previous', got {self.score_layer!r}")

    def prune_layers(self, num_layers: int) -> list[int]:
        if self.layers:
            return sorted(int(x) for x in self.layers)
        return default_layers(num_layers)

    def keep_at(self, stage_index: int, n_visual_now: int, n_visual_total: int) -> int:
        if self.budget is not None:
            first = resolve_budget(self.budget, n_visual_total)
            if first >= n_visual_total:
                return n_visual_now          # a no-op budget disables every stage
            return max(1, math.floor(first * self.ratio ** stage_index + EPS))
        # official: int(N * ratio_list[s+1]) with ratio_list = [1, r, r^2, ...]
        return max(1, math.floor(n_visual_total * self.ratio ** (stage_index + 1) + EPS))

    def select_in_llm(self, ctx: LayerContext) -> Selection:
        attn = ctx.received(torch.tensor([ctx.last_row]))   # (heads, T): the last row's attention
        score = attn[:, ctx.visual_rows].mean(0)
        return Selection(keep=torch.topk(score, ctx.keep, sorted=False).indices)

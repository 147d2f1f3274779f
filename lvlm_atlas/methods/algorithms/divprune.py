"""DivPrune (Alvar et al., CVPR 2025): keep the most *diverse* subset of visual tokens.

Token pruning is cast as a Max-Min Diversity Problem on the visual token embeddings entering the LLM,
with cosine distance: pick the subset whose closest pair is as far apart as possible. Solved greedily:
start from the token farthest from its nearest neighbour, then repeatedly add the token whose
distance to the already-selected set is largest. Vectorised: one running min-distance vector, one
matrix-vector product per step (no N x N matrix after the first pick).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lvlm_atlas.methods.base import Method, PrefillContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage


def greedy_max_min(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of k rows of x chosen greedily to maximise the minimum pairwise cosine distance."""
    e = F.normalize(x.float(), dim=-1)
    dist = 1.0 - e @ e.T
    dist.fill_diagonal_(float("inf"))
    first = int(dist.min(dim=1).values.argmax())
    chosen = torch.empty(k, dtype=torch.long, device=x.device)
    chosen[0] = first
    min_d = 1.0 - e @ e[first]
    min_d[first] = -float("inf")
    for i in range(1, k):                      # stays on the device: no host sync per step
        nxt = min_d.argmax()
        chosen[i] = nxt
        min_d = torch.minimum(min_d, 1.0 - e @ e[nxt])
        min_d[nxt] = -float("inf")           # already chosen: never picked again (min keeps -inf)
    return chosen


@register("divprune")
@dataclass
class DivPrune(Method):
    stage = Stage.PRE_LLM

    def select(self, ctx: PrefillContext) -> Selection:
        return Selection(keep=greedy_max_min(ctx.visual_embeds, ctx.keep))

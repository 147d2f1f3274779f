"""Baseline: keep a uniformly random subset of the visual tokens (seeded, reproducible)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import Method, PrefillContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage


@register("random")
@dataclass
class RandomPrune(Method):
    stage = Stage.PRE_LLM

    def select(self, ctx: PrefillContext) -> Selection:
        perm = torch.randperm(ctx.layout.n_visual, generator=ctx.generator)
        return Selection(keep=perm[: ctx.keep])

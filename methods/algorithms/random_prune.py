"""Baseline: keep a uniformly random subset of the visual tokens (seeded, reproducible)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..base import Method, PrefillContext, Selection
from ..registry import register
from ..stages import Stage


@register("random")
@dataclass
class RandomPrune(Method):
    stage = Stage.PRE_LLM

    def select(self, ctx: PrefillContext) -> Selection:
        perm = torch.randperm(ctx.layout.n_visual, generator=ctx.generator)
        return Selection(keep=perm[: ctx.keep])

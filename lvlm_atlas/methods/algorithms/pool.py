"""Baseline: average-pool the visual tokens down to the budget.

On a regular grid (LLaVA-1.5, Qwen2-VL) whose size divides evenly into the kept count, tokens are
pooled in 2-D blocks; otherwise contiguous runs of tokens (raster order) are averaged. Each pooled
token takes the position of the middle token of its block.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import Method, PrefillContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage
from lvlm_atlas.methods.algorithms._common import split_budget


def _block_shape(h: int, w: int, k: int) -> tuple[int, int] | None:
    for r in range(1, h + 1):
        if k % r == 0 and h % r == 0 and w % (k // r) == 0:
            c = k // r
            if abs((h / r) - (w / c)) < 1e-9:      # square blocks preferred
                return r, c
    for r in range(1, h + 1):
        if k % r == 0 and h % r == 0 and w % (k // r) == 0:
            return r, k // r
    return None


@register("pool")
@dataclass
class Pool(Method):
    stage = Stage.PRE_LLM

    def select(self, ctx: PrefillContext) -> Selection:
        lay = ctx.layout
        emb = ctx.visual_embeds
        counts = [e - s for s, e in lay.image_spans]
        keeps, vecs, offset = [], [], 0
        for n, k, grid in zip(counts, split_budget(counts, ctx.keep), lay.grids):
            x = emb[offset:offset + n]
            shape = _block_shape(*grid, k) if grid and grid[0] * grid[1] == n else None
            if shape is not None:
                h, w = grid
                r, c = shape
                bh, bw = h // r, w // c
                blocks = x.view(r, bh, c, bw, -1).permute(0, 2, 1, 3, 4).reshape(k, bh * bw, -1)
                vecs.append(blocks.mean(1))
                rows = torch.arange(r).repeat_interleave(c) * bh + bh // 2
                cols = torch.arange(c).repeat(r) * bw + bw // 2
                keeps.append(offset + rows * w + cols)
            else:
                bounds = torch.floor(torch.arange(k + 1, dtype=torch.float64) * n / k).long()
                for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                    vecs.append(x[a:b].mean(0, keepdim=True))
                    keeps.append(torch.tensor([offset + (a + b - 1) // 2]))
            offset += n
        return Selection(keep=torch.cat(keeps), embeds=torch.cat(vecs))

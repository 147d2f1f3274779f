"""SnapKV (Li et al., NeurIPS 2024): observation-window voting with pooling, once after prefill."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.kv.evict import group_scores, pool_scores, topk_keep
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod, window_force


def snap_select(ctx, capacity: int, window: int, kernel: int, pooling: str) -> torch.Tensor | None:
    """SnapKV's selection for one layer: ``(B, Hkv, capacity)`` indices, or None if all fit."""
    layer = ctx.layer
    held = layer.held
    if held <= capacity:
        return None
    window = min(window, capacity, held)
    rows = torch.arange(ctx.q_len - window, ctx.q_len, device=ctx.hidden.device)
    votes = group_scores(ctx.attention_to_held(rows), ctx.num_kv_heads, "mean")
    prefix = held - window
    pooled = votes.clone()
    pooled[..., :prefix] = pool_scores(votes[..., :prefix], kernel, pooling)
    return topk_keep(pooled, capacity, window_force(held, window, layer.keys.device))


@register("snapkv")
@dataclass
class SnapKV(KVMethod):
    """The last ``window`` prompt queries vote (summed attention) for prefix entries; votes are
    pooled along the sequence (``kernel``, ``pooling``) so neighbours of important entries survive;
    each KV head keeps its top ``capacity - window`` prefix entries plus the window itself.
    """

    window: int = 32
    kernel: int = 7
    pooling: str = "max"

    def on_prefill(self, ctx) -> None:
        idx = snap_select(ctx, self.capacity(), self.window, self.kernel, self.pooling)
        if idx is not None:
            ctx.layer.keep(idx)

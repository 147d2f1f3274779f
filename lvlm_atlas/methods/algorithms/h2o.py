"""H2O (Zhang et al., NeurIPS 2023): heavy hitters by accumulated attention plus recent entries, updated every step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvlm_atlas.methods.kv.evict import group_scores, topk_keep
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod, window_force


def recent_share(capacity: int, recent_ratio: float) -> int:
    """Entries of ``capacity`` given to the recent window: the heavy hitters get
    ``floor(capacity * (1 - recent_ratio))`` and the window the rest (an odd budget's extra entry
    goes to the window). The official code takes the two sizes separately (``hh_size`` and
    ``recent_size`` counts, or ``int(ratio * length)`` each), so it has no rule for the split itself."""
    heavy = math.floor(capacity * (1.0 - recent_ratio) + 1e-9)
    return min(capacity, max(0, capacity - heavy))


@register("h2o")
@dataclass
class H2O(KVMethod):
    """Each KV head keeps the ``recent_ratio`` share of its budget as the most recent entries (see
    :func:`recent_share` for the rounding) and the rest as the entries with the largest attention
    accumulated over every query so far (prompt queries at prefill, then each generated token's
    query). Query heads of a GQA group add up.
    """

    recent_ratio: float = 0.5

    decode_time = True

    def _evict(self, ctx) -> None:
        layer = ctx.layer
        capacity = self.capacity(layer.seen)
        if layer.held <= capacity:
            return
        recent = recent_share(capacity, self.recent_ratio)
        force = window_force(layer.held, recent, layer.keys.device)
        layer.keep(topk_keep(layer.scores, capacity, force, force_count=min(recent, layer.held)))

    def on_prefill(self, ctx) -> None:
        scores = ctx.attention_to_held()  # every prompt query
        ctx.layer.scores = group_scores(scores, ctx.num_kv_heads, "sum")
        self._evict(ctx)

    def on_decode(self, ctx) -> None:
        last = torch.arange(ctx.q_len - 1, ctx.q_len, device=ctx.hidden.device)  # no host-to-device copy
        ctx.layer.scores = ctx.layer.scores + group_scores(ctx.attention_to_held(last), ctx.num_kv_heads, "sum")
        self._evict(ctx)

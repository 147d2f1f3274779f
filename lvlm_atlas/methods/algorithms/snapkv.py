"""SnapKV (Li et al., NeurIPS 2024): observation-window voting with pooling, once after prefill."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.kv.evict import POOLINGS, group_scores, pool_scores, topk_keep
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod, window_force

SMALL_BUDGETS = ("error", "recent")


def check_window_options(name: str, small_budget: str, pooling: str) -> None:
    if small_budget not in SMALL_BUDGETS:
        raise ValueError(f"{name}: small_budget must be one of {SMALL_BUDGETS}, got {small_budget!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"{name}: pooling must be one of {POOLINGS}, got {pooling!r}")


def small_budget_error(name: str, capacity: int, window: int) -> str:
    return (f"{name}: the budget keeps {capacity} entries per layer and head, not more than the observation window "
            f"({window}); the official code refuses this (assert max_capacity_prompt - window_size > 0). Use a larger "
            "budget, a smaller window, or small_budget='recent' (the window shrinks to the budget: the latest entries)")


def snap_select(ctx, capacity: int, window: int, kernel: int, pooling: str,
                small_budget: str = "error", name: str = "SnapKV") -> torch.Tensor | None:
    """SnapKV's selection for one layer: ``(B, Hkv, capacity)`` indices, or None if all fit.

    The last ``window`` prompt queries vote (attention summed over them; query heads of a GQA group
    averaged), the votes of the prefix are pooled, each KV head keeps its top ``capacity - window``
    prefix entries and the whole window. A budget that does not exceed the window is refused, as the
    official code asserts ``max_capacity_prompt - window_size > 0``; ``small_budget="recent"``
    instead shrinks the window to the budget (the layer then keeps its ``capacity`` latest entries).
    """
    layer = ctx.layer
    held = layer.held
    if held <= capacity:
        return None
    if capacity <= window:
        if small_budget == "error":
            raise ValueError(small_budget_error(name, capacity, window))
        window = capacity
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
    A budget at or below the window is refused unless ``small_budget="recent"``.
    """

    window: int = 32
    kernel: int = 7
    pooling: str = "max"
    small_budget: str = "error"

    def __post_init__(self):
        super().__post_init__()
        check_window_options("snapkv", self.small_budget, self.pooling)

    def on_prefill(self, ctx) -> None:
        idx = snap_select(ctx, self.capacity(), self.window, self.kernel, self.pooling, self.small_budget)
        if idx is not None:
            ctx.layer.keep(idx)

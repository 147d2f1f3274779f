"""PyramidKV (Cai et al., 2024): SnapKV-style selection with budgets shrinking from lower to higher layers."""

from __future__ import annotations

from dataclasses import dataclass

from lvlm_atlas.methods.algorithms.snapkv import check_window_options, small_budget_error, snap_select
from lvlm_atlas.methods.kv.evict import proportional_budgets, pyramid_budgets, pyramid_layer_budgets
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod

ALLOCATIONS = ("official", "exact")


@register("pyramidkv")
@dataclass
class PyramidKV(KVMethod):
    """Layer budgets form an arithmetic sequence from the bottom layer down to the top one around the
    average ``capacity`` (see ``allocation``); within a layer, entries are chosen like SnapKV (window
    votes + pooling, the window always kept).

    ``allocation="official"`` (default) computes the layer budgets with the official code's integer
    formula (:func:`~methods.kv.evict.pyramid_layer_budgets`): the top layer keeps
    ``floor((capacity - window) / beta)`` prefix entries, the step between layers is floored, and short
    prompts (under ``2 * (capacity - window)``) keep ``capacity`` in every layer. ``"exact"``: the
    sequence ``capacity / beta`` .. ``2 * capacity - capacity / beta`` (window included), rounded so the
    total is exactly ``num_layers * capacity``.
    """

    beta: float = 20.0
    window: int = 8
    kernel: int = 7
    pooling: str = "max"
    allocation: str = "official"
    small_budget: str = "error"

    def __post_init__(self):
        super().__post_init__()
        check_window_options("pyramidkv", self.small_budget, self.pooling)
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"pyramidkv: allocation must be one of {ALLOCATIONS}, got {self.allocation!r}")

    def layer_budgets(self, capacity: int, prompt_len: int, num_layers: int) -> list[int]:
        """Entries kept per head in each layer (observation window included)."""
        if capacity >= prompt_len:
            return [capacity] * num_layers
        if capacity <= self.window and self.small_budget == "error":
            raise ValueError(small_budget_error("PyramidKV", capacity, self.window))
        if self.allocation == "official":
            if capacity <= self.window:
                return [capacity] * num_layers
            return pyramid_layer_budgets(capacity, self.window, prompt_len, num_layers, self.beta)
        raw = pyramid_budgets(capacity, num_layers, self.beta)
        # a layer cannot hold more than the prompt: what the lowest layers cannot take is re-spread
        # in proportion to the pyramid, so the total stays num_layers * capacity
        return raw if max(raw) <= prompt_len else proportional_budgets(raw, num_layers * capacity, cap=prompt_len)

    def begin_request(self, request) -> None:
        super().begin_request(request)
        self._budgets = self.layer_budgets(self.capacity(), request.prompt_len, request.num_layers)

    def on_prefill(self, ctx) -> None:
        # the average was checked against the window above; a layer at or below it keeps its latest
        # entries (official: the top layer may keep zero prefix entries, i.e. the window alone)
        idx = snap_select(ctx, self._budgets[ctx.layer_idx], self.window, self.kernel, self.pooling, "recent")
        if idx is not None:
            ctx.layer.keep(idx)

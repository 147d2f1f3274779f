"""PyramidKV (Cai et al., 2024): SnapKV-style selection with budgets shrinking from lower to higher layers."""

from __future__ import annotations

from dataclasses import dataclass

from lvlm_atlas.methods.algorithms.snapkv import snap_select
from lvlm_atlas.methods.kv.evict import proportional_budgets, pyramid_budgets
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod


@register("pyramidkv")
@dataclass
class PyramidKV(KVMethod):
    """Layer budgets form an arithmetic sequence: the top layer keeps ``capacity / beta``, the
    bottom ``2 * capacity - capacity / beta``, so the total equals ``num_layers * capacity``.
    Within a layer, entries are chosen like SnapKV (window votes + pooling).
    """

    beta: float = 20.0
    window: int = 32
    kernel: int = 7
    pooling: str = "max"

    def begin_request(self, request) -> None:
        super().begin_request(request)
        cap, n, L = self.capacity(), request.prompt_len, request.num_layers
        raw = pyramid_budgets(cap, L, self.beta)
        # a layer cannot hold more than the prompt: what the lowest layers cannot take is re-spread
        # in proportion to the pyramid, so the total stays num_layers * capacity
        self._budgets = raw if max(raw) <= n else proportional_budgets(raw, L * cap, cap=n)

    def on_prefill(self, ctx) -> None:
        idx = snap_select(ctx, self._budgets[ctx.layer_idx], self.window, self.kernel, self.pooling)
        if idx is not None:
            ctx.layer.keep(idx)

"""StreamingLLM (Xiao et al., ICLR 2024): attention sinks plus a sliding window of recent entries."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod


@register("streamingllm")
@dataclass
class StreamingLLM(KVMethod):
    """Keep the first ``sinks`` entries and the most recent ``capacity - sinks``, during prefill and decoding.

    The paper re-assigns rotary positions inside the rolling cache; transformers caches keys after
    rotary embedding, so here the held entries keep their original positions (as in NVIDIA kvpress).
    """

    sinks: int = 4

    decode_time = True

    def _keep_index(self, layer, capacity: int) -> torch.Tensor | None:
        held = layer.held
        if held <= capacity:
            return None
        sinks = min(self.sinks, capacity)
        recent = capacity - sinks
        idx = torch.cat([torch.arange(sinks), torch.arange(held - recent, held)]).to(layer.keys.device)
        return idx.expand(*layer.keys.shape[:2], -1)

    def on_prefill(self, ctx) -> None:
        idx = self._keep_index(ctx.layer, self.capacity(ctx.layer.seen))
        if idx is not None:
            ctx.layer.keep(idx)

    def on_decode(self, ctx) -> None:
        self.on_prefill(ctx)

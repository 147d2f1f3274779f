"""VL-Cache (Tu et al., ICLR 2025): sparsity-aware layer budgets and modality-aware (post-vision) token scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lvlm_atlas.methods.kv.evict import group_scores, proportional_budgets, topk_keep
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod


@register("vl_cache")
@dataclass
class VLCache(KVMethod):
    """After prefill, per layer: the queries of the text that follows the last image token
    ("post-vision" queries, the last ``max_queries`` of them) score every entry by the attention
    they give it (accumulated, per KV head). The layer's attention density -- the share of
    post-vision attention weights above ``threshold`` times their row maximum -- sets its share of
    the total budget ``num_layers * capacity``; each KV head then keeps its top-scored entries.
    Without image tokens the last ``max_queries`` prompt queries are used.
    """

    threshold: float = 0.01
    max_queries: int = 64

    def _post_vision_rows(self, ctx) -> torch.Tensor:
        n = ctx.q_len
        vis = ctx.request.is_visual
        start = 0
        if vis is not None and bool(vis.any()):
            start = int(vis.any(dim=0).nonzero().max()) + 1
        if start >= n:
            start = n - 1
        start = max(start, n - self.max_queries)
        return torch.arange(start, n, device=ctx.hidden.device)

    def on_prefill(self, ctx) -> None:
        rows = self._post_vision_rows(ctx)
        scores = group_scores(ctx.attention_to_held(rows), ctx.num_kv_heads, "sum")
        # density needs the individual weights of the (few) post-vision rows: (B, Hq, r, N)
        q = ctx.queries(rows).float()
        keys, _ = ctx.layer.full_precision_kv()
        k = keys.float().repeat_interleave(q.shape[1] // keys.shape[1], dim=1)
        logits = torch.matmul(q, k.transpose(-1, -2)) * float(ctx.attn.scaling)
        held = keys.shape[2]
        visible = torch.arange(held, device=q.device)[None, :] <= (held - ctx.q_len + rows)[:, None]
        probs = torch.softmax(logits.masked_fill(~visible, float("-inf")), dim=-1)
        above = probs >= self.threshold * probs.amax(dim=-1, keepdim=True)
        density = (above & visible).sum(dim=-1).float() / visible.sum(dim=-1).float()
        self._request.stats.setdefault("vl_cache", {})[ctx.layer_idx] = (scores, float(density.mean()))

    def end_prefill(self, layers, request) -> None:
        stats = request.stats.get("vl_cache", {})
        if len(stats) != len(layers):
            return
        n = request.prompt_len
        cap = self.capacity(request.prompt_len)
        if cap >= n:
            return
        budgets = proportional_budgets([stats[i][1] for i in range(len(layers))], cap * len(layers), cap=n)
        request.stats["vl_cache_budgets"] = budgets
        for i, layer in enumerate(layers):
            if layer.held > budgets[i]:
                layer.keep(topk_keep(stats[i][0], budgets[i]))

"""LOOK-M (Wan et al., Findings of EMNLP 2024): text-prior eviction at prefill, evicted KV merged into kept KV."""

from __future__ import annotations

from dataclasses import dataclass

from lvlm_atlas.methods.kv.evict import group_scores, merge_into_kept, topk_keep
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod, window_force

MERGES = ("average", "weighted", "none")


@register("look_m")
@dataclass
class LookM(KVMethod):
    """Once, after prefill: entries are ranked by the attention they accumulated over all prompt
    queries, with every text entry ranked above every image entry (image KV goes first) and the
    last ``window`` entries always kept. Each evicted entry is then merged into the kept entry with
    the most similar key (cosine): ``average`` (plain mean), ``weighted`` (weights = accumulated
    attention) or ``none`` (eviction only).
    """

    window: int = 8
    merge: str = "average"

    def __post_init__(self):
        super().__post_init__()
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {self.merge!r}")

    def on_prefill(self, ctx) -> None:
        layer = ctx.layer
        capacity = self.capacity()
        if layer.held <= capacity:
            return
        scores = group_scores(ctx.attention_to_held(), ctx.num_kv_heads, "mean")
        visual = ctx.visual_held()
        ranked = scores
        if visual is not None:
            # text first: lift every text entry above the best image entry
            ranked = scores + (~visual).float() * (scores.amax(dim=-1, keepdim=True) + 1.0)
        force = window_force(layer.held, min(self.window, capacity), layer.keys.device)
        keep = topk_keep(ranked, capacity, force)
        if self.merge != "none":
            keys, values = layer.full_precision_kv()
            mk, mv = merge_into_kept(keys, values, keep, scores if self.merge == "weighted" else None)
            layer.keep(keep)
            layer.replace(mk, mv)
        else:
            layer.keep(keep)

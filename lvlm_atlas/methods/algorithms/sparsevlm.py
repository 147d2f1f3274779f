"""SparseVLM (Zhang et al., ICML 2025): text-guided visual token sparsification inside the LLM.

Official rule, version 1.0 (github.com/Gumpest/SparseVLMs, llava/model/language_model/
modelling_sparse_llama.py, score.py, utils.py), which this implementation follows by default:

1. Raters, chosen ONCE at the LLM input: with V the visual embeddings and T the embeddings of the tokens
   after the image, softmax(V T^T) over the text tokens, averaged over the visual tokens, gives one
   relevance per text token; the raters are the text tokens whose relevance is strictly above the mean.
2. At each pruning layer l (official 2, 6 and 15 of 32, 0-based) the layer runs on every token and its
   OWN attention (causal softmax, heads averaged) from the raters to the visual tokens still present,
   averaged over the raters, scores the visual tokens; the top `min(count_s, n_visual - 1)` survive in
   the layer's OUTPUT -- i.e. at the input of layer l+1, which is where this framework prunes (it ranks
   with the attention of the layer before the pruning point).
   `count_s` comes from the official table for the "retained tokens" setting: 192 -> 300, 200, 110;
   128 -> 303, 110, 36; 96 -> 238, 48, 26; 64 -> 66, 30, 17 (576 visual tokens).
3. Recycling: of the deleted tokens, the int(0.3 n_deleted) + 1 most significant are clustered (DPC-kNN
   on the layer's output hidden states, int(m / 10) + 1 clusters); each cluster becomes one token (the
   mean of its members). Here a cluster token occupies the row of its centre token.
4. Positions are renumbered 0..n-1 after each drop (the official code truncates position_ids).

The number of visual tokens kept is adaptive in the paper's description (rank of the rater-visual
attention matrix); the released code uses the fixed table above instead, and so does this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvlm_atlas.methods.base import AttentionGuidedMethod, LayerContext, Selection
from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage

OFFICIAL_LAYERS = (2, 6, 15)            # 0-based layers whose OUTPUT is pruned (of 32)
OFFICIAL_VISUAL = 576
OFFICIAL_COUNTS = {192: (300, 200, 110), 128: (303, 110, 36), 96: (238, 48, 26), 64: (66, 30, 17)}


def official_prune_layers(num_layers: int) -> list[int]:
    """Pruning points (input of layer l+1 for official layer l), scaled to the model's depth."""
    pts = {max(1, min(num_layers - 1, round(l * num_layers / 32) + 1)) for l in OFFICIAL_LAYERS}
    return sorted(pts)


def stage_counts(budget: int, n_visual: int, n_stages: int) -> list[int]:
    """Top-k count at each pruning stage (before recycling)."""
    if budget in OFFICIAL_COUNTS:
        counts = [max(1, math.floor(c * n_visual / OFFICIAL_VISUAL)) for c in OFFICIAL_COUNTS[budget]]
    else:   # no official row: the 192 row's shape, starting at the budget
        shape = OFFICIAL_COUNTS[192]
        counts = [max(1, math.floor(budget * c / shape[0])) for c in shape]
    return (counts + [counts[-1]] * n_stages)[:n_stages]


def recycled_counts(n_deleted: int, recycle_ratio: float, cluster_ratio: float) -> tuple[int, int]:
    """(deleted tokens recycled, clusters formed): int(0.3 n) + 1 and int(m / 10) + 1 officially."""
    if n_deleted <= 0:
        return 0, 0
    m = min(n_deleted, int(n_deleted * recycle_ratio) + 1)
    c = min(m, int(m * cluster_ratio) + 1)
    return m, c


def dpc_knn_merge(x: torch.Tensor, n_clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Density-peak clustering with k nearest neighbours (k = n_clusters) of the rows of x (N, C).

    Returns (centre row of each cluster, merged vector of each cluster (mean of its members)). Ties in
    density are broken by row order (the official code adds 1e-6 uniform noise instead).
    """
    xf = x.float()
    n, c = xf.shape
    dist = torch.cdist(xf, xf) / math.sqrt(c)
    near = torch.topk(dist, k=min(n_clusters, n), dim=-1, largest=False).values
    density = torch.exp(-(near ** 2).mean(-1))
    higher = density[None, :] > density[:, None]                       # [i, j]: j denser than i
    parent = torch.where(higher, dist, dist.max()).min(dim=-1).values
    centres = torch.topk(parent * density, k=n_clusters).indices
    assign = dist[centres].argmin(dim=0)                               # nearest centre of each row
    assign[centres] = torch.arange(n_clusters, device=x.device)
    total = torch.zeros(n_clusters, c, device=x.device).index_add_(0, assign, xf)
    count = torch.zeros(n_clusters, device=x.device).index_add_(0, assign, torch.ones(n, device=x.device))
    return centres, (total / (count[:, None] + 1e-6)).to(x.dtype)


def text_raters(embeds: torch.Tensor, visual_index: torch.Tensor) -> torch.Tensor:
    """Original rows of the rater text tokens, from the LLM input embeddings (1, L, D)."""
    e = embeds[0].float()
    after = torch.arange(int(visual_index.max()) + 1, e.shape[0], device=e.device)
    if after.numel() == 0:
        return torch.tensor([e.shape[0] - 1], device=e.device)
    rel = (e[visual_index.to(e.device)] @ e[after].T).softmax(dim=1).mean(0)    # (n_text,)
    raters = after[rel > rel.mean()]
    return raters if raters.numel() else after[-1:]


@register("sparsevlm")
@dataclass
class SparseVLM(AttentionGuidedMethod):
    budget: int | float | None = 192        # official "retained tokens" setting (table row), see module doc
    layers: tuple[int, ...] | None = None   # pruning points (layer inputs); default: after layers 2, 6, 15 of 32
    recycle: bool = True                    # cluster the best deleted tokens into extra tokens
    recycle_ratio: float = 0.3              # share of the deleted tokens recycled (int(r n) + 1)
    cluster_ratio: float = 0.1              # clusters per recycled token (int(c m) + 1)
    renumber_positions: bool = True         # renumber 0..n-1 after each drop (official; 1-D RoPE models)

    stage = Stage.IN_LLM

    def prune_layers(self, num_layers: int) -> list[int]:
        if self.layers:
            return sorted(int(x) for x in self.layers)
        return official_prune_layers(num_layers)

    def _top(self, stage_index: int, n_visual_now: int, n_visual_total: int) -> int | None:
        k = resolve_budget(self.budget, n_visual_total)
        if k >= n_visual_total:
            return None                  # a no-op budget disables every pruning layer
        count = stage_counts(k, n_visual_total, max(stage_index + 1, 3))[stage_index]
        return max(1, min(count, n_visual_now - 1))

    def keep_at(self, stage_index: int, n_visual_now: int, n_visual_total: int) -> int:
        top = self._top(stage_index, n_visual_now, n_visual_total)
        if top is None:
            return n_visual_now
        clusters = recycled_counts(n_visual_now - top, self.recycle_ratio, self.cluster_ratio)[1] if self.recycle else 0
        return top + clusters

    @staticmethod
    def raters(ctx: LayerContext) -> torch.Tensor:
        """Current rows of the rater text tokens (chosen at the LLM input, see `text_raters`)."""
        orig = text_raters(ctx.inputs_embeds, ctx.layout.visual_index)
        return torch.searchsorted(ctx.rows, orig.to(ctx.rows.device))

    def select_in_llm(self, ctx: LayerContext) -> Selection:
        raters = self.raters(ctx)
        # relevance: the raters' attention to each visual token, heads and raters averaged
        score = ctx.received(raters)[:, ctx.visual_rows].mean(0) / raters.numel()   # (n_visual,)
        n = score.numel()
        if not self.recycle:
            return Selection(keep=torch.topk(score, ctx.keep).indices)
        top = self._top(ctx.stage_index, n, ctx.layout.n_visual)
        keep = torch.topk(score, top).indices
        dropped_mask = torch.ones(n, dtype=torch.bool, device=score.device)
        dropped_mask[keep] = False
        dropped = dropped_mask.nonzero().squeeze(1)
        m, c = recycled_counts(dropped.numel(), self.recycle_ratio, self.cluster_ratio)
        recycled = dropped[torch.topk(score[dropped], m).indices]          # most significant first
        hid = ctx.hidden[0, ctx.visual_rows]
        centres, merged = dpc_knn_merge(hid[recycled], c)
        keep_all = torch.cat([keep, recycled[centres]])
        embeds = torch.cat([hid[keep], merged])
        after = torch.arange(top, top + c, device=keep_all.device)
        return Selection(keep=keep_all, embeds=embeds, after=after)

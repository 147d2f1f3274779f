"""SparseMM (Wang et al., ICCV 2025): KV-cache budgets per attention head, larger for the visual heads.

Visual heads are found offline by the OCR probe of :mod:`methods.kv.visual_heads` (a head scores when
its most-attended key, for the query that produces an OCR token, lies inside that token's box in the
image); the scores are read from a file (``head_scores``). The total cache budget
``num_layers * num_kv_heads * capacity`` is then split over all heads of the model:

* every head keeps the observation window (the last ``window`` prompt tokens),
* a uniform share: ``uniform_ratio`` of the rest of the average budget, the same for every head,
* the remainder in proportion to the head's visual score (query-head scores of a GQA group summed).

``allocation="official"`` (default) rounds each head's share as the official code does
(:func:`head_budgets_official`: ``int`` for the uniform share, half-to-even rounding of the
proportional one, a head capped at the prompt without re-splitting, so the total is only close to
the budget); ``allocation="exact"`` re-splits what capped heads cannot take and hits the total exactly
(:func:`head_budgets`). A budget at or below the window is refused unless ``small_budget="recent"``.

Inside each head the entries are ranked like SnapKV (votes of the observation-window queries,
pooled along the sequence) and the head keeps its top ``budget[head]`` entries. The cache stays
rectangular: a layer holds as many entries as its largest head budget, and the entries a smaller head
does not own are flagged as padding (``layer.valid``) and masked out of its attention by the route of
:mod:`methods.kv.attention_route` (set on the model only inside the method's context).

Without a score file, a per-request stand-in is used: each head's share of the observation window's
attention that lands on image tokens (a deviation from the paper's offline probe, recorded in the
request stats as ``sparsemm_score_source``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch

from lvlm_atlas.methods.algorithms.snapkv import check_window_options, small_budget_error
from lvlm_atlas.methods.kv.evict import group_scores, pool_scores, proportional_budgets
from lvlm_atlas.methods.kv.method import KVMethod, window_force
from lvlm_atlas.methods.kv.visual_heads import VisualHeadScores
from lvlm_atlas.methods.registry import register


def head_budgets(scores: torch.Tensor, capacity: int, prompt_len: int, window: int,
                 uniform_ratio: float) -> torch.Tensor:
    """``(layers, kv_heads)`` entries per head: window + uniform share + visual-score share.

    The total is ``layers * kv_heads * capacity`` exactly and no head exceeds ``prompt_len``.
    """
    L, H = scores.shape
    if not 0.0 <= uniform_ratio <= 1.0:
        raise ValueError(f"uniform_ratio must be in [0, 1], got {uniform_ratio}")
    capacity = min(capacity, prompt_len)
    w = min(window, capacity)
    uniform = int(uniform_ratio * (capacity - w))
    base = w + uniform
    flexible = proportional_budgets(scores.flatten().double().tolist(), L * H * (capacity - base),
                                    cap=prompt_len - base, minimum=0)
    return base + torch.tensor(flexible, dtype=torch.long).reshape(L, H)


def head_budgets_official(scores: torch.Tensor, capacity: int, prompt_len: int, window: int,
                          ratio: float) -> torch.Tensor:
    """``(layers, kv_heads)`` entries per head (window included) by the official formula
    (SparseMM ``sparsemm_utils.SparseMM.__init__`` / ``update_kv``).

    With ``base = capacity - window``: every head gets ``min_cache = int(base * ratio)`` prefix entries
    plus its share of ``(base - min_cache) * layers * kv_heads`` in proportion to its score (scores
    normalised to sum to one over all heads), rounded half to even (``torch.round``); a head cannot
    keep more than the prefix (``prompt_len - window``), and what it cannot take is not re-spread.
    The total is therefore close to, not exactly, ``layers * kv_heads * capacity``.
    """
    L, H = scores.shape
    base = capacity - window
    s = scores.double().clamp_min(0)
    s = s / s.sum() if float(s.sum()) > 0 else torch.full_like(s, 1.0 / s.numel())
    min_cache = int(base * ratio)
    remain = (base - min_cache) * L * H
    prefix = torch.round(s * remain + min_cache).long().clamp(0, prompt_len - window)
    return prefix + window


@functools.lru_cache(maxsize=8)
def _load_scores(path: str) -> VisualHeadScores:
    return VisualHeadScores.load(path)


@register("sparsemm")
@dataclass
class SparseMM(KVMethod):
    """Head-level KV budgets from visual-head scores; SnapKV ranking inside each head (see module docstring)."""

    head_scores: str | None = None   # visual-head score file written by methods.kv.visual_heads
    window: int = 32
    uniform_ratio: float = 0.1
    kernel: int = 5
    pooling: str = "avg"
    allocation: str = "official"
    small_budget: str = "error"

    ragged_heads: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.uniform_ratio <= 1.0:
            raise ValueError(f"uniform_ratio must be in [0, 1], got {self.uniform_ratio}")
        check_window_options("sparsemm", self.small_budget, self.pooling)
        if self.allocation not in ("official", "exact"):
            raise ValueError(f"sparsemm: allocation must be official or exact, got {self.allocation!r}")
        if self.head_scores is not None:
            _load_scores(str(self.head_scores))  # fail early on a missing or malformed file

    def on_prefill(self, ctx) -> None:
        layer = ctx.layer
        held = layer.held
        w = min(self.window, held)
        rows = torch.arange(ctx.q_len - w, ctx.q_len, device=ctx.hidden.device)
        attention = ctx.attention_to_held(rows)                              # (B, Hq, held)
        votes = group_scores(attention, ctx.num_kv_heads, "mean")
        prefix = held - w
        pooled = votes.clone()
        pooled[..., :prefix] = pool_scores(votes[..., :prefix], self.kernel, self.pooling)
        visual = ctx.visual_held()                                           # (B, Hkv, held) or None
        proxy = None
        if self.head_scores is None and visual is not None:
            vis_q = visual.repeat_interleave(attention.shape[1] // visual.shape[1], dim=1)
            proxy = (attention * vis_q).sum(-1).mean(0) / max(w, 1)           # (Hq,) share on image tokens
        self._request.stats.setdefault("sparsemm", {})[ctx.layer_idx] = (pooled, w, proxy)
        self._request.stats["sparsemm_query_heads"] = int(attention.shape[1])

    def _scores(self, layers, request) -> torch.Tensor:
        hkv = layers[0].keys.shape[1]
        if self.head_scores is not None:
            vs = _load_scores(str(self.head_scores))
            vs.check_shape(len(layers), request.stats["sparsemm_query_heads"])
            request.stats["sparsemm_score_source"] = "file"
            return vs.kv_head_scores(hkv)
        stats = request.stats["sparsemm"]
        proxies = [stats[i][2] for i in range(len(layers))]
        request.stats["sparsemm_score_source"] = "prompt-proxy"
        if any(p is None for p in proxies):
            return torch.ones(len(layers), hkv, dtype=torch.float64)  # no image tokens known: uniform
        q = torch.stack([p.double().cpu() for p in proxies])                # (L, Hq)
        return q.reshape(len(layers), hkv, -1).sum(-1)

    def end_prefill(self, layers, request) -> None:
        stats = request.stats.get("sparsemm", {})
        if len(stats) != len(layers):
            return
        n = request.prompt_len
        cap = self.capacity(n)
        if cap >= n:
            return
        if cap <= self.window and self.small_budget == "error":
            raise ValueError(small_budget_error("SparseMM", cap, self.window))
        if self.allocation == "official" and cap > self.window:
            budgets = head_budgets_official(self._scores(layers, request), cap, n, self.window, self.uniform_ratio)
        else:
            budgets = head_budgets(self._scores(layers, request), cap, n, self.window, self.uniform_ratio)
        request.stats["sparsemm_budgets"] = budgets
        for i, layer in enumerate(layers):
            pooled, w, _ = stats[i]
            b = budgets[i].to(pooled.device)                                 # (Hkv,)
            held = layer.held
            m = int(b.max())
            if int(b.min()) >= held:
                continue
            m = min(m, held)
            force = window_force(held, min(w, cap), pooled.device)
            score = pooled.float().masked_fill(force, float("inf"))
            ranked = torch.sort(-score, dim=-1, stable=True).indices[..., :m]  # ties: earlier entry first
            valid = torch.arange(m, device=pooled.device)[None, None, :] < b[None, :, None]
            layer.keep(ranked, valid.expand_as(ranked))

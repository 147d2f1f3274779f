"""Pure functions on per-layer key/value tensors and scores: budgets, top-k selection, pooling, merging.

Tensors follow transformers' cache layout: keys/values ``(B, Hkv, N, D)``, per-entry scores
``(B, Hkv, N)``. Selections are index tensors ``(B, Hkv, n)`` into the N entries, sorted ascending.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def group_scores(scores: torch.Tensor, num_kv_heads: int, reduce: str = "mean") -> torch.Tensor:
    """Fold per-query-head scores ``(B, Hq, N)`` onto key/value heads ``(B, Hkv, N)`` (GQA groups)."""
    B, Hq, N = scores.shape
    if Hq % num_kv_heads:
        raise ValueError(f"{Hq} query heads do not split into {num_kv_heads} KV heads")
    g = scores.reshape(B, num_kv_heads, Hq // num_kv_heads, N)
    if reduce == "mean":
        return g.mean(dim=2)
    if reduce == "sum":
        return g.sum(dim=2)
    if reduce == "max":
        return g.amax(dim=2)
    raise ValueError(f"reduce must be mean, sum or max, got {reduce!r}")


POOLINGS = ("max", "avg", "avg_valid")


def pool_scores(scores: torch.Tensor, kernel: int, kind: str = "max") -> torch.Tensor:
    """SnapKV's clustering: 1-D pooling along the entries with stride 1 and same-size output.

    ``max``: the largest score in the window (padding never wins). ``avg``: the window's sum divided
    by ``kernel`` -- padding counts as zeros, as in the official SnapKV / PyramidKV / SparseMM code and
    kvpress (``F.avg_pool1d``'s default ``count_include_pad=True``), so the first and last
    ``kernel // 2`` entries score lower. ``avg_valid``: the mean over the entries inside the sequence
    only (padding excluded; this package's rule before it was aligned with the official code).
    """
    if kind not in POOLINGS:
        raise ValueError(f"pooling kind must be one of {POOLINGS}, got {kind!r}")
    if kernel <= 1:
        return scores
    if kernel % 2 == 0:
        raise ValueError(f"pooling kernel must be odd (got {kernel}) so that the output stays aligned")
    B, H, N = scores.shape
    x = scores.reshape(B * H, 1, N)
    if kind == "max":
        y = F.max_pool1d(x, kernel, stride=1, padding=kernel // 2)
    else:
        y = F.avg_pool1d(x, kernel, stride=1, padding=kernel // 2, count_include_pad=kind == "avg")
    return y.reshape(B, H, N)


def topk_keep(scores: torch.Tensor, keep: int, force: torch.Tensor | None = None,
              force_count: int | None = None) -> torch.Tensor:
    """Indices ``(B, H, keep)`` (ascending) of the highest-scored entries per head.

    ``force`` is a boolean mask broadcastable to ``scores`` of entries that are always kept (an
    observation window, attention sinks, ...); they count towards ``keep``. ``force_count`` (the number of
    forced entries per head, known on the host) is checked against ``keep``; the mask itself is never
    read back (no host-device synchronisation). Ties break towards the earlier entry, so the selection
    is deterministic.
    """
    B, H, N = scores.shape
    if not 0 < keep <= N:
        raise ValueError(f"cannot keep {keep} of {N} entries")
    s = scores.float()
    if force is not None:
        force = force.expand_as(s)
        if force_count is not None and force_count > keep:
            raise ValueError(f"{force_count} forced entries exceed the budget of {keep}")
        s = torch.where(force, torch.full_like(s, float("inf")), s)
    # stable tie-break: subtract a tiny position-proportional amount via a lexicographic sort
    order = torch.sort(s, dim=-1, descending=True, stable=True).indices
    return order[..., :keep].sort(dim=-1).values


def gather_kv(keys: torch.Tensor, values: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys/values at ``index`` ``(B, H, n)``."""
    idx = index.unsqueeze(-1).expand(-1, -1, -1, keys.shape[-1])
    return keys.gather(2, idx), values.gather(2, idx)


def evicted_index(keep_index: torch.Tensor, n: int) -> torch.Tensor:
    """The complement of ``keep_index`` ``(B, H, k)`` in ``range(n)``: ``(B, H, n - k)`` ascending."""
    B, H, k = keep_index.shape
    mask = torch.ones(B, H, n, dtype=torch.bool, device=keep_index.device)
    mask.scatter_(-1, keep_index, False)
    return mask.nonzero()[:, 2].reshape(B, H, n - k)


def pyramid_budgets(average: int, num_layers: int, beta: float, minimum: int = 1) -> list[int]:
    """PyramidKV's per-layer budgets: an arithmetic sequence from the bottom layer down to the top one.

    The top layer gets ``average / beta``, the bottom ``2 * average - top``; the sum is
    ``num_layers * average`` exactly (rounding remainders go to the lowest layers).
    """
    if num_layers == 1:
        return [average]
    top = average / beta
    bottom = 2 * average - top
    raw = [bottom + (top - bottom) * i / (num_layers - 1) for i in range(num_layers)]
    out = [max(minimum, int(math.floor(x))) for x in raw]
    rest = num_layers * average - sum(out)
    i = 0
    while rest != 0:
        step = 1 if rest > 0 else -1
        j = i % num_layers if step > 0 else num_layers - 1 - (i % num_layers)
        if step > 0 or out[j] > minimum:
            out[j] += step
            rest -= step
        i += 1
    return out


def pyramid_layer_budgets(capacity: int, window: int, prompt_len: int, num_layers: int, beta: float) -> list[int]:
    """PyramidKV's per-layer budgets as the official code computes them (KVCache-Factory
    ``PyramidKVCluster.update_kv``): entries kept per layer and head, observation window included.

    With ``base = capacity - window`` prefix entries on average: the top layer gets
    ``floor(base / beta)``, the bottom ``2 * base - top``; if the bottom would exceed the prefix
    (``prompt_len - window``) it is cut to the prefix and the top raised so the two still sum to
    ``2 * base``; layer ``i`` keeps ``bottom - i * floor((bottom - top) / (num_layers - 1))`` prefix
    entries plus the window. The integer step leaves the total at or above ``num_layers * capacity``
    (it is exact only when the step divides evenly). When the prompt is shorter than ``2 * base``,
    every layer keeps ``capacity`` (the official code's SnapKV fallback); a one-layer model too.
    """
    base = capacity - window
    if base <= 0:
        raise ValueError(f"PyramidKV needs the budget ({capacity}) above the observation window ({window})")
    if prompt_len < 2 * base or num_layers == 1:
        return [capacity] * num_layers
    top = int(math.floor(base / beta))
    bottom = 2 * base - top
    if bottom >= prompt_len - window:
        bottom = prompt_len - window
        top = 2 * base - bottom
    step = (bottom - top) // (num_layers - 1)
    return [window + bottom - i * step for i in range(num_layers)]


def proportional_budgets(weights: list[float], total: int, cap: int, minimum: int = 1) -> list[int]:
    """Split ``total`` entries over layers in proportion to ``weights`` (each in [minimum, cap]), summing to total."""
    n = len(weights)
    if total < n * minimum or total > n * cap:
        raise ValueError(f"total {total} cannot be split over {n} layers within [{minimum}, {cap}] each")
    w = torch.tensor(weights, dtype=torch.float64).clamp_min(0)
    if float(w.sum()) <= 0:
        w = torch.ones(n, dtype=torch.float64)
    out = [minimum] * n
    left = total - n * minimum
    free = list(range(n))
    # water-filling: hand out the remainder proportionally, re-splitting what capped layers cannot take
    while left > 0 and free:
        ws = w[free]
        share = ws / ws.sum() if float(ws.sum()) > 0 else torch.full_like(ws, 1 / len(free))
        gave = 0
        for j, sh in zip(list(free), share.tolist()):
            add = min(cap - out[j], int(math.floor(sh * left)))
            out[j] += add
            gave += add
        left -= gave
        free = [j for j in free if out[j] < cap]
        if gave == 0:  # remainders smaller than one entry per layer: give them to the heaviest layers
            for j in sorted(free, key=lambda j: -float(w[j])):
                if left == 0:
                    break
                out[j] += 1
                left -= 1
    return out


def merge_into_kept(
    keys: torch.Tensor,
    values: torch.Tensor,
    keep_index: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LOOK-M merging: fold every evicted entry into the kept entry whose key is most similar (cosine).

    Each kept entry becomes the average of itself and the evicted entries assigned to it; with
    ``weights`` ``(B, H, N)`` (e.g. accumulated attention), a weighted average instead. Returns the
    merged kept keys/values ``(B, H, k, D)`` aligned with ``keep_index``.
    """
    B, H, N, D = keys.shape
    k = keep_index.shape[-1]
    kept_k, kept_v = gather_kv(keys, values, keep_index)
    if k == N:
        return kept_k, kept_v
    ev = evicted_index(keep_index, N)
    ev_k, ev_v = gather_kv(keys, values, ev)
    sim = torch.matmul(F.normalize(ev_k.float(), dim=-1), F.normalize(kept_k.float(), dim=-1).transpose(-1, -2))
    target = sim.argmax(dim=-1)  # (B, H, N - k): kept slot each evicted entry joins
    if weights is None:
        w_kept = torch.ones(B, H, k, device=keys.device)
        w_ev = torch.ones(B, H, N - k, device=keys.device)
    else:
        w = weights.float().clamp_min(1e-12)
        w_kept, w_ev = w.gather(-1, keep_index), w.gather(-1, ev)
    num_k = kept_k.float() * w_kept.unsqueeze(-1)
    num_v = kept_v.float() * w_kept.unsqueeze(-1)
    den = w_kept.clone()
    idx = target.unsqueeze(-1).expand(-1, -1, -1, D)
    num_k.scatter_add_(2, idx, ev_k.float() * w_ev.unsqueeze(-1))
    num_v.scatter_add_(2, idx, ev_v.float() * w_ev.unsqueeze(-1))
    den.scatter_add_(2, target, w_ev)
    return (num_k / den.unsqueeze(-1)).to(keys.dtype), (num_v / den.unsqueeze(-1)).to(values.dtype)

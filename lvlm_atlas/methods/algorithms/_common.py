"""Small tensor helpers shared by several methods."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def split_budget(counts: list[int], k: int) -> list[int]:
    """Split k kept tokens across images proportionally to their token counts (largest remainder)."""
    total = sum(counts)
    raw = [k * c / total for c in counts]
    out = [min(c, int(r)) for c, r in zip(counts, raw)]
    order = sorted(range(len(counts)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    i = 0
    while sum(out) < k:
        j = order[i % len(order)]
        if out[j] < counts[j]:
            out[j] += 1
        i += 1
    return out


def uniform_indices(n: int, k: int, device=None) -> torch.Tensor:
    """k distinct indices spread evenly over range(n)."""
    if k <= 0:
        return torch.empty(0, dtype=torch.long, device=device)
    return torch.floor((torch.arange(k, device=device, dtype=torch.float64) + 0.5) * n / k).long().clamp_(max=n - 1)


def merge_into_nearest(targets: torch.Tensor, others: torch.Tensor, metric: torch.Tensor,
                       values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Average each target's value with the values of the `others` whose `metric` vector is most similar
    (cosine) to it. Returns new values for `targets` (len(targets), D)."""
    out = values[targets].float().clone()
    if others.numel() == 0:
        return out.to(values.dtype)
    m = F.normalize(metric.float(), dim=-1)
    sim = m[others] @ m[targets].T                       # (n_others, n_targets)
    assign = sim.argmax(dim=1)
    w_t = torch.ones(targets.numel(), device=values.device) if weights is None else weights[targets].float()
    w_o = torch.ones(others.numel(), device=values.device) if weights is None else weights[others].float()
    acc = out * w_t[:, None]
    acc.index_add_(0, assign, values[others].float() * w_o[:, None])
    norm = w_t.clone().index_add_(0, assign, w_o)
    return (acc / norm[:, None]).to(values.dtype)

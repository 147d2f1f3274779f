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


def require_video_family(name: str, adapter) -> None:
    """Video methods run on the Qwen2-VL family (the families with a video path here)."""
    if not adapter.is_qwen:
        raise NotImplementedError(f"{name} needs video input, implemented for the Qwen2-VL family (got {adapter.family})")


class PrunedVideoRequest:
    """Mixin of the video methods that shorten the decoder input themselves: their decoder-stack pre-hook
    `_on_lm` calls `self._prefill(req, kwargs)` on a prefill (which sets req["keep_seq"], "lm_len" and
    "next_pos" when it drops rows) and continues the positions and the 2-D mask on decode steps."""

    _req: dict | None = None

    def _on_lm(self, module, args, kwargs):
        from lvlm_atlas.methods.session import continue_decode
        from lvlm_atlas.methods.transformers_adapter import past_length

        req = self._req
        if req is None or req.get("ids") is None:
            return None
        if past_length(kwargs) == 0:
            return args, self._prefill(req, kwargs)
        if req.get("keep_seq") is None:
            return None
        req["next_pos"] = continue_decode(kwargs, req["keep_seq"], req["lm_len"], req["next_pos"])
        return args, kwargs

"""Attention signals recomputed for just the slice a method needs (the model itself stays on SDPA/flash).

`llm_attention_rows` rebuilds softmax attention rows of one decoder layer from the inputs that layer's
self-attention received (post-norm hidden states and rotary cos/sin), using that module's own q/k
projections. Only the requested query rows are projected; keys are projected for all positions because
the softmax denominator needs them (one k-projection: a small fraction of one layer's cost).
"""
from __future__ import annotations

import torch
from torch import nn


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, H, T, D); cos/sin: (B, T, D)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + _rotate_half(x) * sin


@torch.no_grad()
def llm_attention_rows(attn: nn.Module, hidden: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                       rows: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Attention probabilities (B, heads, len(rows), T) of query `rows` over all T keys of one layer.

    `hidden` is the (B, T, D) input of `attn` (after the layer's input norm); `rows` are row indices
    into T. Works for Llama / Mistral / Qwen2 / Qwen2-VL style attention (rotate-half RoPE, GQA).
    """
    if getattr(attn, "q_norm", None) is not None or getattr(attn, "k_norm", None) is not None:
        raise NotImplementedError(f"{type(attn).__name__} uses q/k norms; attention recompute does not support it yet")
    b, t, _ = hidden.shape
    hd = attn.head_dim
    cos, sin = position_embeddings
    q = attn.q_proj(hidden[:, rows]).view(b, rows.numel(), -1, hd).transpose(1, 2)
    k = attn.k_proj(hidden).view(b, t, -1, hd).transpose(1, 2)
    q = _apply_rope(q, cos[:, rows], sin[:, rows])
    k = _apply_rope(k, cos, sin)
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * float(attn.scaling)
    if causal:
        allowed = torch.arange(t, device=hidden.device)[None, :] <= rows.to(hidden.device)[:, None]
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1)


@torch.no_grad()
def clip_cls_attention(attn: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a CLIP-style vision attention: (CLS->patch attention averaged over heads (B, N), patch keys (B, N, C)).

    `hidden` is the (B, 1+N, C) input of the attention module (after layer_norm1); position 0 is CLS.
    """
    b, t, c = hidden.shape
    heads = attn.num_heads
    hd = c // heads
    q = attn.q_proj(hidden[:, :1]).view(b, 1, heads, hd).transpose(1, 2)
    k_flat = attn.k_proj(hidden)
    k = k_flat.view(b, t, heads, hd).transpose(1, 2)
    probs = (torch.matmul(q.float(), k.float().transpose(-1, -2)) * float(attn.scale)).softmax(-1)  # (B,H,1,T)
    return probs[:, :, 0, 1:].mean(1), k_flat[:, 1:]


@torch.no_grad()
def mean_received_attention(q: torch.Tensor, k: torch.Tensor, scale: float, chunk: int = 1024) -> torch.Tensor:
    """Mean attention each key receives from all queries (heads averaged): q, k (H, T, d) -> (T,)."""
    h, t, _ = q.shape
    total = torch.zeros(t, dtype=torch.float32, device=q.device)
    for s in range(0, t, chunk):
        p = (torch.matmul(q[:, s:s + chunk].float(), k.float().transpose(-1, -2)) * scale).softmax(-1)
        total += p.sum(dim=(0, 1))
    return total / (h * t)

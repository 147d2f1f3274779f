"""Attention signals recomputed for just the slice a method needs (the model itself stays on SDPA/flash).

`llm_queries_keys` re-projects, for one decoder layer, the rotary-embedded queries of the requested rows
and the keys of all positions from the inputs that layer's self-attention received (post-norm hidden
states and rotary cos/sin), using that module's own q/k projections (one k-projection: a small fraction
of one layer's cost). The in-LLM methods turn them into scores with the attention-score kernel
(`kernels.attention_scores`: Triton on CUDA, an exact chunked torch path on CPU), which never forms the
rows x T probability matrix: `llm_attention_received` (per-key attention mass summed over the query rows)
and `llm_attention_mass` (share of each query row's attention that falls on a set of keys).
`llm_attention_rows` materialises the probability rows themselves (plain torch; small slices only).
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
def llm_queries_keys(attn: nn.Module, hidden: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                     rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary-embedded queries (B, heads, len(rows), D) of `rows` and keys (B, kv_heads, T, D) of one layer.

    `hidden` is the (B, T, D) input of `attn` (after the layer's input norm); `rows` are row indices
    into T. Works for Llama / Mistral / Qwen2 / Qwen2-VL style attention (rotate-half RoPE, GQA).
    """
    if getattr(attn, "q_norm", None) is not None or getattr(attn, "k_norm", None) is not None:
        raise NotImplementedError(f"{type(attn).__name__} uses q/k norms; attention recompute does not support it yet")
    b, t, _ = hidden.shape
    hd = attn.head_dim
    cos, sin = position_embeddings
    rows = rows.to(hidden.device)
    q = attn.q_proj(hidden[:, rows]).view(b, rows.numel(), -1, hd).transpose(1, 2)
    k = attn.k_proj(hidden).view(b, t, -1, hd).transpose(1, 2)
    return _apply_rope(q, cos[:, rows], sin[:, rows]), _apply_rope(k, cos, sin)


@torch.no_grad()
def llm_attention_received(attn: nn.Module, hidden: torch.Tensor, position_embeddings, rows: torch.Tensor,
                           backend: str = "auto") -> torch.Tensor:
    """(B, heads, T): attention each key receives, summed over the causal query `rows` (score kernel)."""
    from lvlm_atlas.kernels.attention_scores import accumulated_attention

    q, k = llm_queries_keys(attn, hidden, position_embeddings, rows)
    return accumulated_attention(q.contiguous(), k.contiguous(), q_positions=rows, scale=float(attn.scaling),
                                 backend=backend)


@torch.no_grad()
def llm_attention_mass(attn: nn.Module, hidden: torch.Tensor, position_embeddings, rows: torch.Tensor,
                       cols: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """(B, heads, len(rows)): the share of each causal query row's attention that lands on keys `cols`."""
    from lvlm_atlas.kernels.attention_scores import attention_mass_to_keys

    q, k = llm_queries_keys(attn, hidden, position_embeddings, rows)
    return attention_mass_to_keys(q.contiguous(), k.contiguous(), cols, q_positions=rows,
                                  scale=float(attn.scaling), backend=backend)


@torch.no_grad()
def llm_attention_rows(attn: nn.Module, hidden: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                       rows: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Attention probabilities (B, heads, len(rows), T) of query `rows` over all T keys of one layer.

    Materialises the probabilities; the methods use `llm_attention_received` / `llm_attention_mass`.
    """
    t = hidden.shape[1]
    q, k = llm_queries_keys(attn, hidden, position_embeddings, rows)
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

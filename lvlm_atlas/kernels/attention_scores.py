"""Accumulated attention scores: per-key sums of causal softmax(Q K^T * scale) over chosen queries.

The attention-guided methods (H2O, SnapKV, PyramidKV, LOOK-M, VL-Cache, FastV, ...) need, for a set of
queries (the last token, an observation window, or all of them), how much attention each key
received. Asking the model for ``output_attentions`` materialises an ``L x N`` matrix per head and
forces the eager attention path; these functions compute only the ``N`` column sums.

Shapes (batch ``B``, query heads ``Hq``, key/value heads ``Hkv`` with ``Hq % Hkv == 0``):

- ``q``: ``(B, Hq, L, D)`` queries (already rotary-embedded, as the model sees them)
- ``k``: ``(B, Hkv, N, D)`` keys
- ``q_positions``: ``(L,)`` key index each query sits at (causal: query i sees keys ``j <= q_positions[i]``);
  defaults to the last ``L`` positions, ``N - L .. N - 1``.
- result: ``(B, Hq, N)`` float32, ``result[b, h, j] = sum_i softmax_i(q_i . k_j * scale)``

The Triton version runs two passes. Pass 1 streams key tiles per query tile and keeps an online
row max / sum, giving each query row's log-sum-exp. Pass 2 streams query tiles per key tile and adds
``exp(s - lse)`` into the key tile's column sums. Memory is ``O((L + N) * D)``.
"""

from __future__ import annotations

import math

import torch

from lvlm_atlas.kernels.dispatch import use_triton

__all__ = [
    "accumulated_attention", "accumulated_attention_reference", "attention_mass_to_keys", "row_logsumexp",
    "row_logsumexp_reference",
]


def _default_positions(L: int, N: int, device: torch.device) -> torch.Tensor:
    if L > N:
        raise ValueError(f"{L} queries but only {N} keys: pass q_positions explicitly")
    return torch.arange(N - L, N, device=device, dtype=torch.int32)


def _check(q: torch.Tensor, k: torch.Tensor, q_positions: torch.Tensor | None) -> torch.Tensor:
    if q.dim() != 4 or k.dim() != 4:
        raise ValueError(f"q and k must be 4-D (B, H, L, D); got {tuple(q.shape)} and {tuple(k.shape)}")
    B, Hq, L, D = q.shape
    Bk, Hkv, N, Dk = k.shape
    if B != Bk or D != Dk:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} disagree on batch or head_dim")
    if Hq % Hkv:
        raise ValueError(f"{Hq} query heads are not a multiple of {Hkv} key/value heads")
    if q_positions is None:
        return _default_positions(L, N, q.device)
    q_positions = q_positions.to(device=q.device, dtype=torch.int32).reshape(-1)
    if q_positions.numel() != L:
        raise ValueError(f"q_positions has {q_positions.numel()} entries for {L} queries")
    return q_positions


def _expand_kv(k: torch.Tensor, Hq: int) -> torch.Tensor:
    return k.repeat_interleave(Hq // k.shape[1], dim=1)


def _masked_logits(q, k, q_positions, scale):
    kk = _expand_kv(k, q.shape[1]).float()
    logits = torch.matmul(q.float(), kk.transpose(-1, -2)) * scale
    key_idx = torch.arange(k.shape[2], device=q.device)
    visible = key_idx[None, :] <= q_positions.long()[:, None]  # (L, N)
    return logits.masked_fill(~visible, float("-inf"))


def row_logsumexp_reference(q, k, q_positions=None, scale=None) -> torch.Tensor:
    """``(B, Hq, L)`` log-sum-exp of each query's causal logits (plain torch)."""
    q_positions = _check(q, k, q_positions)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return torch.logsumexp(_masked_logits(q, k, q_positions, scale), dim=-1)


def accumulated_attention_reference(q, k, q_positions=None, scale=None) -> torch.Tensor:
    """Plain-torch reference: materialises the ``L x N`` probabilities (use small shapes)."""
    q_positions = _check(q, k, q_positions)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    probs = torch.softmax(_masked_logits(q, k, q_positions, scale), dim=-1)
    return probs.sum(dim=-2)


def _chunked_torch(q, k, q_positions, scale, chunk: int = 256) -> torch.Tensor:
    """Torch path used on CPU: exact, but processes ``chunk`` queries at a time (O(chunk * N) memory)."""
    out = torch.zeros(q.shape[0], q.shape[1], k.shape[2], dtype=torch.float32, device=q.device)
    for start in range(0, q.shape[2], chunk):
        sl = slice(start, start + chunk)
        probs = torch.softmax(_masked_logits(q[:, :, sl], k, q_positions[sl], scale), dim=-1)
        out += probs.sum(dim=-2)
    return out


def _chunked_lse(q, k, q_positions, scale, chunk: int = 256) -> torch.Tensor:
    parts = [torch.logsumexp(_masked_logits(q[:, :, s:s + chunk], k, q_positions[s:s + chunk], scale), dim=-1)
             for s in range(0, q.shape[2], chunk)]
    if not parts:
        return torch.empty(q.shape[0], q.shape[1], 0, dtype=torch.float32, device=q.device)
    return torch.cat(parts, dim=-1)


def row_logsumexp(q, k, q_positions=None, scale=None, backend: str = "auto") -> torch.Tensor:
    """``(B, Hq, L)`` log-sum-exp of each query's causal logits (``-inf`` for a query that sees no key).

    Same shapes and ``backend`` choice as :func:`accumulated_attention`; the Triton path is that
    function's first pass (online max / sum over key tiles).
    """
    q_positions = _check(q, k, q_positions)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if use_triton(q, k, backend=backend):
        return _triton_row_lse(q, k, q_positions, scale)
    return _chunked_lse(q, k, q_positions, scale)


def attention_mass_to_keys(q, k, key_index, q_positions=None, scale=None, backend: str = "auto") -> torch.Tensor:
    """``(B, Hq, L)``: the share of each query's causal attention that falls on the keys ``key_index``.

    ``key_index`` is a 1-D tensor of key indices (0..N-1, any order, no duplicates). Computed as
    ``exp(lse(keys in key_index) - lse(all keys))`` from two log-sum-exp passes, so no ``L x N``
    probability matrix is formed. Causality is kept on the subset by re-expressing each query's
    position as the number of chosen keys at or before it, minus one.
    """
    q_positions = _check(q, k, q_positions)
    key_index = torch.as_tensor(key_index, device=k.device).long().reshape(-1)
    if key_index.numel() and (int(key_index.min()) < 0 or int(key_index.max()) >= k.shape[2]):
        raise ValueError(f"key_index must lie in 0..{k.shape[2] - 1}")
    key_index = torch.sort(key_index).values
    lse_all = row_logsumexp(q, k, q_positions, scale, backend)
    if key_index.numel() == 0:
        return torch.zeros_like(lse_all)
    sub_pos = torch.searchsorted(key_index, q_positions.long(), right=True) - 1   # -1: sees none of them
    lse_sub = row_logsumexp(q, k.index_select(2, key_index), sub_pos, scale, backend)
    return torch.exp(lse_sub - lse_all)


def accumulated_attention(q, k, q_positions=None, scale=None, backend: str = "auto") -> torch.Tensor:
    """Per-key attention mass ``(B, Hq, N)`` received from the queries ``q``; see the module docstring.

    ``backend``: ``"auto"`` (Triton on CUDA, chunked torch elsewhere), ``"triton"`` or ``"torch"``.
    """
    q_positions = _check(q, k, q_positions)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if use_triton(q, k, backend=backend):
        return _triton_accumulated_attention(q, k, q_positions, scale)
    return _chunked_torch(q, k, q_positions, scale)


# --------------------------------------------------------------------------------------------------
# Triton
# --------------------------------------------------------------------------------------------------
try:  # triton is an optional extra: the torch paths above work without it
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the install
    triton = None

if triton is not None:

    @triton.jit
    def _lse_kernel(
        Q, K, POS, LSE,
        stride_qb, stride_qh, stride_ql, stride_qd,
        stride_kb, stride_kh, stride_kn, stride_kd,
        stride_lb, stride_lh,
        Hq, L, N, D, group, scale, P0,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, CONSECUTIVE: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // Hq
        h = pid_bh % Hq
        hk = h // group
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        m_mask = offs_m < L
        d_mask = offs_d < D
        q = tl.load(
            Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_ql + offs_d[None, :] * stride_qd,
            mask=m_mask[:, None] & d_mask[None, :], other=0.0,
        )
        pos = tl.load(POS + offs_m, mask=m_mask, other=0)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        # causal: no key after the tile's last query position matters
        hi = N
        if CONSECUTIVE:
            hi = tl.minimum(N, P0 + (pid_m + 1) * BLOCK_M)
        for start_n in range(0, hi, BLOCK_N):
            offs_n = start_n + tl.arange(0, BLOCK_N)
            n_mask = offs_n < N
            kt = tl.load(
                K + b * stride_kb + hk * stride_kh + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                mask=n_mask[None, :] & d_mask[:, None], other=0.0,
            )
            s = tl.dot(q, kt).to(tl.float32) * scale
            visible = (offs_n[None, :] <= pos[:, None]) & n_mask[None, :]
            s = tl.where(visible, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            # rows with nothing visible yet keep m = -inf; guard the exp against (-inf) - (-inf)
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            l_i = l_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(s - m_safe[:, None]), 1)
            m_i = m_new
        lse = m_i + tl.log(l_i)
        tl.store(LSE + b * stride_lb + h * stride_lh + offs_m, lse, mask=m_mask)

    @triton.jit
    def _colsum_kernel(
        Q, K, POS, LSE, OUT,
        stride_qb, stride_qh, stride_ql, stride_qd,
        stride_kb, stride_kh, stride_kn, stride_kd,
        stride_lb, stride_lh,
        stride_ob, stride_oh,
        Hq, L, N, D, group, scale, P0,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, CONSECUTIVE: tl.constexpr,
    ):
        pid_n = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // Hq
        h = pid_bh % Hq
        hk = h // group
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        n_mask = offs_n < N
        d_mask = offs_d < D
        kt = tl.load(
            K + b * stride_kb + hk * stride_kh + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd,
            mask=n_mask[None, :] & d_mask[:, None], other=0.0,
        )
        acc = tl.zeros([BLOCK_N], tl.float32)
        # causal: queries positioned before this key tile see none of it
        lo = 0
        if CONSECUTIVE:
            lo = (tl.maximum(0, pid_n * BLOCK_N - P0) // BLOCK_M) * BLOCK_M
        for start_m in range(lo, L, BLOCK_M):
            offs_m = start_m + tl.arange(0, BLOCK_M)
            m_mask = offs_m < L
            q = tl.load(
                Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_ql + offs_d[None, :] * stride_qd,
                mask=m_mask[:, None] & d_mask[None, :], other=0.0,
            )
            pos = tl.load(POS + offs_m, mask=m_mask, other=-1)
            lse = tl.load(LSE + b * stride_lb + h * stride_lh + offs_m, mask=m_mask, other=0.0)
            s = tl.dot(q, kt).to(tl.float32) * scale
            visible = (offs_n[None, :] <= pos[:, None]) & m_mask[:, None] & n_mask[None, :]
            p = tl.where(visible, tl.exp(s - lse[:, None]), 0.0)
            acc += tl.sum(p, 0)
        tl.store(OUT + b * stride_ob + h * stride_oh + offs_n, acc, mask=n_mask)


_BLOCK_M, _BLOCK_N = 16, 64


def _launch_params(q, k, q_positions):
    if triton is None:  # pragma: no cover
        raise RuntimeError("triton is not installed; use backend='torch'")
    L, D = q.shape[2], q.shape[3]
    pos = q_positions.contiguous()
    p0 = int(pos[0]) if L else 0
    consecutive = bool(L) and bool(torch.equal(pos, torch.arange(p0, p0 + L, device=pos.device, dtype=pos.dtype)))
    return pos, p0, consecutive, max(16, triton.next_power_of_2(D))


def _triton_row_lse(q, k, q_positions, scale):
    pos, p0, consecutive, BLOCK_D = _launch_params(q, k, q_positions)
    B, Hq, L, D = q.shape
    Hkv, N = k.shape[1], k.shape[2]
    lse = torch.empty(B, Hq, L, dtype=torch.float32, device=q.device)
    if L == 0:
        return lse
    _lse_kernel[(triton.cdiv(L, _BLOCK_M), B * Hq)](
        q, k, pos, lse,
        *q.stride(), *k.stride(), lse.stride(0), lse.stride(1),
        Hq, L, N, D, Hq // Hkv, scale, p0,
        BLOCK_M=_BLOCK_M, BLOCK_N=_BLOCK_N, BLOCK_D=BLOCK_D, CONSECUTIVE=consecutive,
    )
    return lse


def _triton_accumulated_attention(q, k, q_positions, scale):
    pos, p0, consecutive, BLOCK_D = _launch_params(q, k, q_positions)
    B, Hq, L, D = q.shape
    Hkv, N = k.shape[1], k.shape[2]
    group = Hq // Hkv
    BLOCK_M, BLOCK_N = _BLOCK_M, _BLOCK_N
    lse = _triton_row_lse(q, k, q_positions, scale)
    out = torch.empty(B, Hq, N, dtype=torch.float32, device=q.device)
    _colsum_kernel[(triton.cdiv(N, BLOCK_N), B * Hq)](
        q, k, pos, lse, out,
        *q.stride(), *k.stride(), lse.stride(0), lse.stride(1), out.stride(0), out.stride(1),
        Hq, L, N, D, group, scale, p0,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D, CONSECUTIVE=consecutive,
    )
    return out

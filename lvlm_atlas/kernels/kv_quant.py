"""KIVI-style KV quantization: 2/4-bit asymmetric codes packed into bytes, and a fused decode kernel.

Keys are quantized per channel (each group spans ``group`` consecutive tokens of one channel: key
outliers live in fixed channels), values per token (each group spans ``group`` consecutive channels
of one token). A group stores ``min`` and ``scale = (max - min) / (2^bits - 1)``; a code is
``floor((x - min) / scale + 0.5)`` clipped to ``[0, 2^bits - 1]``, so the dequantized value
``code * scale + min`` is within ``scale / 2`` of ``x``.

Codes are packed along the head dimension: byte ``j`` of a row holds elements
``j * P .. j * P + P - 1`` (``P = 8 // bits``), element ``s`` in bits ``s * bits``.

``decode_attention`` computes single-token attention against a quantized prefix plus a
full-precision residual window; the Triton kernel dequantizes tiles in registers (the quantized
prefix is never expanded in memory), and the residual part is merged through log-sum-exp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvlm_atlas.kernels.dispatch import use_triton

__all__ = [
    "QuantizedTensor",
    "quantize",
    "quantize_reference",
    "dequantize",
    "decode_attention",
    "decode_attention_reference",
]

MODES = ("channel", "token")


@dataclass
class QuantizedTensor:
    """Packed codes plus per-group scale/min of a ``(B, H, N, D)`` tensor."""

    codes: torch.Tensor  # uint8 (B, H, N, D * bits // 8)
    scale: torch.Tensor  # channel: (B, H, N // group, D); token: (B, H, N, D // group)
    minimum: torch.Tensor  # same shape as scale
    bits: int
    group: int
    mode: str
    head_dim: int

    @property
    def seq_len(self) -> int:
        return self.codes.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes actually held by the three tensors."""
        return sum(t.numel() * t.element_size() for t in (self.codes, self.scale, self.minimum))

    def cat(self, other: "QuantizedTensor") -> "QuantizedTensor":
        """Append ``other`` (same layout) along the token axis."""
        if (self.bits, self.group, self.mode, self.head_dim) != (other.bits, other.group, other.mode, other.head_dim):
            raise ValueError("cannot concatenate quantized tensors with different layouts")
        return QuantizedTensor(
            torch.cat([self.codes, other.codes], dim=2),
            torch.cat([self.scale, other.scale], dim=2),
            torch.cat([self.minimum, other.minimum], dim=2),
            self.bits, self.group, self.mode, self.head_dim,
        )



def _validate(x: torch.Tensor, bits: int, group: int, mode: str) -> None:
    if bits not in (2, 4):
        raise ValueError(f"bits must be 2 or 4, got {bits}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if x.dim() != 4:
        raise ValueError(f"expected a (B, H, N, D) tensor, got shape {tuple(x.shape)}")
    if group < 8 or group & (group - 1):
        raise ValueError(f"group must be a power of two >= 8, got {group}")
    N, D = x.shape[2], x.shape[3]
    if mode == "channel" and N % group:
        raise ValueError(f"per-channel groups need the token count ({N}) to be a multiple of group={group}")
    if mode == "token" and D % group:
        raise ValueError(f"per-token groups need head_dim ({D}) to be a multiple of group={group}")


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    per = 8 // bits
    c = codes.to(torch.uint8).reshape(*codes.shape[:-1], codes.shape[-1] // per, per)
    packed = torch.zeros(c.shape[:-1], dtype=torch.uint8, device=codes.device)
    for s in range(per):
        packed |= c[..., s] << (s * bits)
    return packed


def _unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    per = 8 // bits
    mask = (1 << bits) - 1
    parts = [(packed >> (s * bits)) & mask for s in range(per)]
    return torch.stack(parts, dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * per)


def quantize_reference(x: torch.Tensor, bits: int, group: int, mode: str) -> QuantizedTensor:
    """Plain-torch quantize + pack. Scale/min are stored in ``x.dtype`` (like KIVI's fp16 params)."""
    _validate(x, bits, group, mode)
    B, H, N, D = x.shape
    levels = (1 << bits) - 1
    xf = x.float()
    if mode == "channel":
        g = xf.reshape(B, H, N // group, group, D)
        mn, mx = g.amin(dim=3), g.amax(dim=3)  # (B, H, N/G, D)
        scale = ((mx - mn) / levels).to(x.dtype)
        mn = mn.to(x.dtype)
        s_b = scale.float().repeat_interleave(group, dim=2)
        m_b = mn.float().repeat_interleave(group, dim=2)
    else:
        g = xf.reshape(B, H, N, D // group, group)
        mn, mx = g.amin(dim=4), g.amax(dim=4)  # (B, H, N, D/G)
        scale = ((mx - mn) / levels).to(x.dtype)
        mn = mn.to(x.dtype)
        s_b = scale.float().repeat_interleave(group, dim=3)
        m_b = mn.float().repeat_interleave(group, dim=3)
    safe = torch.where(s_b > 0, s_b, torch.ones_like(s_b))
    codes = torch.floor((xf - m_b) / safe + 0.5).clamp_(0, levels)
    return QuantizedTensor(_pack(codes, bits), scale, mn, bits, group, mode, D)


def dequantize(qt: QuantizedTensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Unpack and dequantize to ``(B, H, N, D)`` (float32 unless ``dtype`` is given)."""
    codes = _unpack(qt.codes, qt.bits).float()
    dim = 2 if qt.mode == "channel" else 3
    s = qt.scale.float().repeat_interleave(qt.group, dim=dim)
    m = qt.minimum.float().repeat_interleave(qt.group, dim=dim)
    out = codes * s + m
    return out if dtype is None else out.to(dtype)


def quantize(x: torch.Tensor, bits: int, group: int, mode: str, backend: str = "auto") -> QuantizedTensor:
    """Quantize + pack ``x`` (Triton on CUDA, torch reference elsewhere)."""
    _validate(x, bits, group, mode)
    if use_triton(x, backend=backend):
        return _triton_quantize(x, bits, group, mode)
    return quantize_reference(x, bits, group, mode)


def _attend(q, k, v, scale):
    """Full-precision single-query attention pieces: (unnormalised-free output, lse) per query head."""
    Hq, Hkv = q.shape[1], k.shape[1]
    k = k.repeat_interleave(Hq // Hkv, dim=1).float()
    v = v.repeat_interleave(Hq // Hkv, dim=1).float()
    logits = torch.matmul(q.float(), k.transpose(-1, -2)) * scale  # (B, Hq, 1, N)
    lse = torch.logsumexp(logits, dim=-1)  # (B, Hq, 1)
    out = torch.matmul(torch.softmax(logits, dim=-1), v)  # (B, Hq, 1, D)
    return out, lse


def _merge(parts):
    """Combine (out, lse) pairs computed over disjoint key sets."""
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0][0]
    lse_all = torch.logsumexp(torch.stack([lse for _, lse in parts]), dim=0)
    return sum(out * torch.exp(lse - lse_all).unsqueeze(-1) for out, lse in parts)


def decode_attention_reference(q, qkeys, qvalues, k_res=None, v_res=None, scale=None) -> torch.Tensor:
    """Dequantize everything, then plain attention. ``q``: ``(B, Hq, 1, D)``; returns float32 ``(B, Hq, 1, D)``."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    k = dequantize(qkeys)
    v = dequantize(qvalues)
    if k_res is not None and k_res.shape[2]:
        k = torch.cat([k, k_res.float()], dim=2)
        v = torch.cat([v, v_res.float()], dim=2)
    return _attend(q, k, v, scale)[0]


def decode_attention(q, qkeys, qvalues, k_res=None, v_res=None, scale=None, backend: str = "auto") -> torch.Tensor:
    """Single-query attention over a quantized prefix plus a full-precision residual window.

    ``q``: ``(B, Hq, 1, D)``; ``qkeys``/``qvalues``: :class:`QuantizedTensor` with ``Hkv`` heads;
    ``k_res``/``v_res``: ``(B, Hkv, R, D)`` or None. Returns float32 ``(B, Hq, 1, D)``.
    """
    if q.dim() != 4 or q.shape[2] != 1:
        raise ValueError(f"decode_attention takes one query per head, q shape {tuple(q.shape)}")
    if qkeys.mode != "channel" or qvalues.mode != "token":
        raise ValueError("expected per-channel keys and per-token values (KIVI layout)")
    if qkeys.bits != qvalues.bits or qkeys.seq_len != qvalues.seq_len:
        raise ValueError("quantized keys and values must share bit width and token count")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if not use_triton(q, qkeys.codes, backend=backend):
        return decode_attention_reference(q, qkeys, qvalues, k_res, v_res, scale)
    parts = [_triton_decode(q, qkeys, qvalues, scale) if qkeys.seq_len else None]
    if k_res is not None and k_res.shape[2]:
        parts.append(_attend(q, k_res, v_res, scale))
    if all(p is None for p in parts):
        raise ValueError("decode_attention needs at least one key")
    return _merge(parts)


# --------------------------------------------------------------------------------------------------
# Triton
# --------------------------------------------------------------------------------------------------
try:
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover
    triton = None

if triton is not None:

    @triton.jit
    def _quant_channel_kernel(
        X, CODES, SCALE, MINV,
        sxb, sxh, sxn, sxd, scb, sch, scn, scd, ssb, ssh, ssg, ssd,
        H, D, NBYTES,
        BITS: tl.constexpr, PER: tl.constexpr, GROUP: tl.constexpr, BLOCK_J: tl.constexpr,
    ):
        # one program: one (b, h), one token group, a tile of packed byte columns
        pid_bh = tl.program_id(0)
        g = tl.program_id(1)
        pid_j = tl.program_id(2)
        b = pid_bh // H
        h = pid_bh % H
        offs_t = g * GROUP + tl.arange(0, GROUP)
        offs_j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
        j_mask = offs_j < NBYTES
        levels = (1 << BITS) - 1
        packed = tl.zeros([GROUP, BLOCK_J], tl.int32)
        for s in tl.static_range(PER):
            cols = offs_j * PER + s
            x = tl.load(
                X + b * sxb + h * sxh + offs_t[:, None] * sxn + cols[None, :] * sxd,
                mask=j_mask[None, :], other=0.0,
            ).to(tl.float32)
            mn = tl.min(x, 0)
            mx = tl.max(x, 0)
            sc = ((mx - mn) / levels).to(SCALE.dtype.element_ty)
            mn_s = mn.to(MINV.dtype.element_ty)
            p_off = b * ssb + h * ssh + g * ssg + cols * ssd
            tl.store(SCALE + p_off, sc, mask=j_mask)
            tl.store(MINV + p_off, mn_s, mask=j_mask)
            scf = sc.to(tl.float32)
            safe = tl.where(scf > 0, scf, 1.0)
            # IEEE round-to-nearest division, as torch's: GPU `/` is approximate and broke ties differently
            code = tl.floor(tl.math.div_rn(x - mn_s.to(tl.float32)[None, :], safe[None, :]) + 0.5)
            code = tl.minimum(tl.maximum(code, 0.0), levels).to(tl.int32)
            packed = packed | (code << (s * BITS))
        tl.store(
            CODES + b * scb + h * sch + offs_t[:, None] * scn + offs_j[None, :] * scd,
            packed.to(tl.uint8), mask=j_mask[None, :],
        )

    @triton.jit
    def _quant_token_kernel(
        X, CODES, SCALE, MINV,
        sxb, sxh, sxn, sxd, scb, sch, scn, scd, ssb, ssh, ssn, ssg,
        H, N,
        BITS: tl.constexpr, PER: tl.constexpr, GROUP: tl.constexpr, BLOCK_T: tl.constexpr,
    ):
        # one program: one (b, h), a tile of tokens, one channel group
        pid_bh = tl.program_id(0)
        pid_t = tl.program_id(1)
        g = tl.program_id(2)
        b = pid_bh // H
        h = pid_bh % H
        offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
        t_mask = offs_t < N
        JG: tl.constexpr = GROUP // PER
        offs_jj = tl.arange(0, JG)
        levels = (1 << BITS) - 1
        mn = tl.full([BLOCK_T], float("inf"), tl.float32)
        mx = tl.full([BLOCK_T], float("-inf"), tl.float32)
        for s in tl.static_range(PER):
            cols = g * GROUP + offs_jj * PER + s
            x = tl.load(
                X + b * sxb + h * sxh + offs_t[:, None] * sxn + cols[None, :] * sxd,
                mask=t_mask[:, None], other=0.0,
            ).to(tl.float32)
            mn = tl.minimum(mn, tl.min(x, 1))
            mx = tl.maximum(mx, tl.max(x, 1))
        sc = ((mx - mn) / levels).to(SCALE.dtype.element_ty)
        mn_s = mn.to(MINV.dtype.element_ty)
        p_off = b * ssb + h * ssh + offs_t * ssn + g * ssg
        tl.store(SCALE + p_off, sc, mask=t_mask)
        tl.store(MINV + p_off, mn_s, mask=t_mask)
        scf = sc.to(tl.float32)
        safe = tl.where(scf > 0, scf, 1.0)
        mnf = mn_s.to(tl.float32)
        packed = tl.zeros([BLOCK_T, JG], tl.int32)
        for s in tl.static_range(PER):
            cols = g * GROUP + offs_jj * PER + s
            x = tl.load(
                X + b * sxb + h * sxh + offs_t[:, None] * sxn + cols[None, :] * sxd,
                mask=t_mask[:, None], other=0.0,
            ).to(tl.float32)
            code = tl.floor(tl.math.div_rn(x - mnf[:, None], safe[:, None]) + 0.5)  # IEEE division (ties)
            code = tl.minimum(tl.maximum(code, 0.0), levels).to(tl.int32)
            packed = packed | (code << (s * BITS))
        bytes_cols = g * JG + offs_jj
        tl.store(
            CODES + b * scb + h * sch + offs_t[:, None] * scn + bytes_cols[None, :] * scd,
            packed.to(tl.uint8), mask=t_mask[:, None],
        )

    @triton.jit
    def _decode_kernel(
        Q, KC, KS, KM, VC, VS, VM, OUT, LSE,
        sqb, sqh, sqd,
        skcb, skch, skcn, skcd, sksb, sksh, sksg, sksd,
        svcb, svch, svcn, svcd, svsb, svsh, svsn, svsg,
        sob, soh, sod, slb, slh,
        Hq, N, D, group_heads, scale,
        BITS: tl.constexpr, PER: tl.constexpr, KGROUP: tl.constexpr, VGROUP: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        pid = tl.program_id(0)
        b = pid // Hq
        h = pid % Hq
        hk = h // group_heads
        offs_d = tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        q = tl.load(Q + b * sqb + h * sqh + offs_d * sqd, mask=d_mask, other=0.0).to(tl.float32)
        byte_col = offs_d // PER
        shift = (offs_d % PER) * BITS
        cmask = (1 << BITS) - 1
        m_i = float("-inf")
        l_i = 0.0
        acc = tl.zeros([BLOCK_D], tl.float32)
        for start in range(0, N, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            n_mask = offs_n < N
            mask2 = n_mask[:, None] & d_mask[None, :]
            kb = tl.load(
                KC + b * skcb + hk * skch + offs_n[:, None] * skcn + byte_col[None, :] * skcd,
                mask=mask2, other=0,
            ).to(tl.int32)
            kcode = ((kb >> shift[None, :]) & cmask).to(tl.float32)
            kp = b * sksb + hk * sksh + (offs_n // KGROUP)[:, None] * sksg + offs_d[None, :] * sksd
            ks = tl.load(KS + kp, mask=mask2, other=0.0).to(tl.float32)
            km = tl.load(KM + kp, mask=mask2, other=0.0).to(tl.float32)
            k = kcode * ks + km
            s = tl.sum(k * q[None, :], 1) * scale
            s = tl.where(n_mask, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 0))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new)
            vb = tl.load(
                VC + b * svcb + hk * svch + offs_n[:, None] * svcn + byte_col[None, :] * svcd,
                mask=mask2, other=0,
            ).to(tl.int32)
            vcode = ((vb >> shift[None, :]) & cmask).to(tl.float32)
            vp = b * svsb + hk * svsh + offs_n[:, None] * svsn + (offs_d // VGROUP)[None, :] * svsg
            vs = tl.load(VS + vp, mask=mask2, other=0.0).to(tl.float32)
            vm = tl.load(VM + vp, mask=mask2, other=0.0).to(tl.float32)
            v = vcode * vs + vm
            acc = acc * alpha + tl.sum(p[:, None] * v, 0)
            l_i = l_i * alpha + tl.sum(p, 0)
            m_i = m_new
        tl.store(OUT + b * sob + h * soh + offs_d * sod, acc / l_i, mask=d_mask)
        tl.store(LSE + b * slb + h * slh, m_i + tl.log(l_i))


def _triton_quantize(x, bits, group, mode):
    if triton is None:  # pragma: no cover
        raise RuntimeError("triton is not installed; use backend='torch'")
    B, H, N, D = x.shape
    per = 8 // bits
    nbytes = D // per
    codes = torch.empty(B, H, N, nbytes, dtype=torch.uint8, device=x.device)
    if mode == "channel":
        scale = torch.empty(B, H, N // group, D, dtype=x.dtype, device=x.device)
        minv = torch.empty_like(scale)
        block_j = min(32, triton.next_power_of_2(nbytes))
        grid = (B * H, N // group, triton.cdiv(nbytes, block_j))
        _quant_channel_kernel[grid](
            x, codes, scale, minv, *x.stride(), *codes.stride(), *scale.stride(),
            H, D, nbytes, BITS=bits, PER=per, GROUP=group, BLOCK_J=block_j,
        )
    else:
        scale = torch.empty(B, H, N, D // group, dtype=x.dtype, device=x.device)
        minv = torch.empty_like(scale)
        block_t = 32
        grid = (B * H, triton.cdiv(N, block_t), D // group)
        _quant_token_kernel[grid](
            x, codes, scale, minv, *x.stride(), *codes.stride(), *scale.stride(),
            H, N, BITS=bits, PER=per, GROUP=group, BLOCK_T=block_t,
        )
    return QuantizedTensor(codes, scale, minv, bits, group, mode, D)


def _triton_decode(q, qk, qv, scale):
    B, Hq, _, D = q.shape
    Hkv = qk.codes.shape[1]
    N = qk.seq_len
    out = torch.empty(B, Hq, D, dtype=torch.float32, device=q.device)
    lse = torch.empty(B, Hq, dtype=torch.float32, device=q.device)
    q3 = q[:, :, 0, :]
    _decode_kernel[(B * Hq,)](
        q3, qk.codes, qk.scale, qk.minimum, qv.codes, qv.scale, qv.minimum, out, lse,
        q3.stride(0), q3.stride(1), q3.stride(2),
        *qk.codes.stride(), *qk.scale.stride(),
        *qv.codes.stride(), *qv.scale.stride(),
        out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1),
        Hq, N, D, Hq // Hkv, scale,
        BITS=qk.bits, PER=8 // qk.bits, KGROUP=qk.group, VGROUP=qv.group,
        BLOCK_N=32, BLOCK_D=max(16, triton.next_power_of_2(D)),
    )
    return out.unsqueeze(2), lse.unsqueeze(2)

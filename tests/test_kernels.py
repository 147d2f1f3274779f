"""Triton kernels against their torch references.

On CPU the kernels run under Triton's interpreter. ``TRITON_INTERPRET=1`` only takes effect if it is
set before the *first* ``import triton`` of the process (triton's own ``tl.zeros``/``tl.sum`` are
decorated when triton is imported), so this module sets it before importing triton. If something
imported triton earlier in this pytest process (loading a transformers model does), the in-process
interpreter tests are skipped and ``test_interpreter_suite_in_fresh_process`` reruns this file in a
subprocess with the variable set. CUDA tests run the compiled kernels and need a GPU.
"""

from __future__ import annotations

import math

import pytest

from tests.triton_interp import request_interpreter, rerun_with_interpreter

torch = pytest.importorskip("torch")

HAS_CUDA = torch.cuda.is_available()
request_interpreter(HAS_CUDA)

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from lvlm_atlas.kernels import attention_scores as scores_i  # noqa: E402
from lvlm_atlas.kernels import kv_quant as quant_i  # noqa: E402

INTERPRETED = isinstance(tl.zeros, InterpretedFunction) and isinstance(scores_i._lse_kernel, InterpretedFunction)
interp = pytest.mark.skipif(
    not INTERPRETED, reason="triton was imported before TRITON_INTERPRET=1 could be set; see the subprocess test"
)


@pytest.mark.skipif(INTERPRETED or HAS_CUDA, reason="the interpreter tests already ran in this process")
def test_interpreter_suite_in_fresh_process():
    assert " passed" in rerun_with_interpreter(__file__)


# ------------------------------------------------------------------ attention-score accumulation
SCORE_SHAPES = [
    # B, Hq, Hkv, L, N, D
    (1, 4, 2, 1, 70, 32),  # last token, GQA 2:1
    (1, 2, 2, 7, 45, 16),  # observation window
    (2, 4, 1, 37, 37, 24),  # all queries, MQA, head_dim not a power of two
]


@interp
@pytest.mark.parametrize("shape", SCORE_SHAPES)
def test_score_kernel_matches_reference(shape):
    B, Hq, Hkv, L, N, D = shape
    g = torch.Generator().manual_seed(sum(shape))
    q = torch.randn(B, Hq, L, D, generator=g)
    k = torch.randn(B, Hkv, N, D, generator=g) * 2.0
    got = scores_i.accumulated_attention(q, k, backend="triton")
    want = scores_i.accumulated_attention_reference(q, k)
    assert got.shape == (B, Hq, N)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # each query row is a distribution: the column sums add up to the number of queries
    torch.testing.assert_close(got.sum(-1), torch.full((B, Hq), float(L)), rtol=1e-4, atol=1e-4)


@interp
def test_score_kernel_is_causal_and_takes_explicit_positions():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 2, 3, 16, generator=g)
    k = torch.randn(1, 2, 40, 16, generator=g)
    pos = torch.tensor([5, 20, 39])
    got = scores_i.accumulated_attention(q, k, q_positions=pos, backend="triton")
    torch.testing.assert_close(got, scores_i.accumulated_attention_reference(q, k, pos), rtol=1e-4, atol=1e-5)
    assert torch.all(got[..., 40:] == 0)
    # keys after the last query's position get nothing; keys 21..39 only from the query at 39
    only_last = scores_i.accumulated_attention_reference(q[:, :, 2:], k, pos[2:])
    torch.testing.assert_close(got[..., 21:], only_last[..., 21:], rtol=1e-4, atol=1e-6)


def test_score_chunked_torch_path_matches_reference():
    g = torch.Generator().manual_seed(4)
    q = torch.randn(1, 2, 600, 8, generator=g)
    k = torch.randn(1, 1, 600, 8, generator=g)
    got = scores_i.accumulated_attention(q, k, backend="torch")
    torch.testing.assert_close(got, scores_i.accumulated_attention_reference(q, k), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=interp), "torch"])
def test_row_logsumexp_matches_reference(backend):
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, 4, 6, 16, generator=g)
    k = torch.randn(1, 2, 50, 16, generator=g)
    pos = torch.tensor([3, 10, 17, 30, 41, 49])
    got = scores_i.row_logsumexp(q, k, pos, backend=backend)
    torch.testing.assert_close(got, scores_i.row_logsumexp_reference(q, k, pos), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=interp), "torch"])
def test_attention_mass_to_keys_matches_summed_probabilities(backend):
    g = torch.Generator().manual_seed(6)
    q = torch.randn(1, 4, 5, 16, generator=g)
    k = torch.randn(1, 2, 60, 16, generator=g) * 2.0
    pos = torch.tensor([2, 12, 25, 40, 59])
    cols = torch.tensor([30, 5, 6, 7, 8, 20, 21, 50])         # unsorted, some after early queries
    probs = torch.softmax(scores_i._masked_logits(q, k, pos, 0.25), dim=-1)   # (1, 4, 5, 60)
    want = probs[..., cols].sum(-1)
    got = scores_i.attention_mass_to_keys(q, k, cols, pos, scale=0.25, backend=backend)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert torch.all(got[..., 0] == 0)                         # the query at 2 sees none of the chosen keys
    everything = scores_i.attention_mass_to_keys(q, k, torch.arange(60), pos, scale=0.25, backend=backend)
    torch.testing.assert_close(everything, torch.ones_like(everything))


def test_score_errors_are_explained():
    with pytest.raises(ValueError, match="not a multiple"):
        scores_i.accumulated_attention(torch.randn(1, 3, 1, 8), torch.randn(1, 2, 4, 8))
    with pytest.raises(ValueError, match="q_positions"):
        scores_i.accumulated_attention(torch.randn(1, 2, 5, 8), torch.randn(1, 2, 3, 8))
    with pytest.raises(ValueError, match="key_index"):
        scores_i.attention_mass_to_keys(torch.randn(1, 2, 1, 8), torch.randn(1, 2, 3, 8), torch.tensor([3]))


# ------------------------------------------------------------------ quantize / pack
@interp
@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("mode,shape,group", [("channel", (1, 2, 64, 32), 32), ("token", (2, 2, 37, 32), 16)])
def test_quantize_kernel_matches_reference_and_bound(bits, mode, shape, group):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(*shape, generator=g) * 3
    got = quant_i.quantize(x, bits, group, mode, backend="triton")
    want = quant_i.quantize_reference(x, bits, group, mode)
    assert torch.equal(got.codes, want.codes)
    torch.testing.assert_close(got.scale, want.scale)
    torch.testing.assert_close(got.minimum, want.minimum)
    # the bit width bounds the error: half a quantization step of the element's group
    err = (quant_i.dequantize(want) - x).abs()
    dim = 2 if mode == "channel" else 3
    half_step = want.scale.repeat_interleave(group, dim=dim) / 2
    assert torch.all(err <= half_step * (1 + 1e-5) + 1e-6)
    assert want.codes.dtype == torch.uint8 and want.codes.shape[-1] == shape[-1] * bits // 8


@interp
@pytest.mark.parametrize("mode,group", [("channel", 32), ("token", 16)])
def test_quantize_kernel_breaks_rounding_ties_like_the_reference(mode, group):
    """Values exactly half-way between two levels (in float32 after the fp16 scale) round the same way in the
    kernel and the reference: both divide with IEEE round-to-nearest (a GPU's fast division did not)."""
    levels = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 0.1, 0.3, 2.9])
    base = levels.repeat(32 * 32 // levels.numel()).reshape(1, 1, 32, 32)
    for scale in (1.0, 0.1, 1 / 3, 0.7):
        x = base * scale
        got = quant_i.quantize(x, 2, group, mode, backend="triton")
        want = quant_i.quantize_reference(x, 2, group, mode)
        assert torch.equal(got.codes, want.codes), scale


def test_quantize_constant_group_is_exact_and_bad_layouts_rejected():
    x = torch.ones(1, 1, 32, 16) * 0.75
    qt = quant_i.quantize_reference(x, 2, 32, "channel")
    assert torch.equal(quant_i.dequantize(qt), x)
    with pytest.raises(ValueError, match="multiple of group"):
        quant_i.quantize_reference(torch.randn(1, 1, 30, 16), 2, 32, "channel")
    with pytest.raises(ValueError, match="bits"):
        quant_i.quantize_reference(torch.randn(1, 1, 32, 16), 3, 32, "channel")


@pytest.mark.parametrize("bits", [2, 4])
def test_bf16_two_bit_footprint(bits):
    x = torch.randn(1, 4, 256, 128, dtype=torch.bfloat16)
    kq = quant_i.quantize_reference(x, bits, 32, "channel")
    vq = quant_i.quantize_reference(x, bits, 32, "token")
    ratio = (kq.nbytes + vq.nbytes) / (2 * x.numel() * x.element_size())
    assert ratio == pytest.approx(bits / 16 + 2 * 16 / 32 / 16)  # codes + (scale, min) per 32-element group
    if bits == 2:
        assert ratio <= 0.2


# ------------------------------------------------------------------ fused decode attention
@interp
@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("residual", [0, 5])
def test_decode_kernel_matches_reference(bits, residual):
    g = torch.Generator().manual_seed(10 + bits + residual)
    k = torch.randn(1, 2, 64, 32, generator=g)
    v = torch.randn(1, 2, 64, 32, generator=g)
    q = torch.randn(1, 4, 1, 32, generator=g)
    kr = torch.randn(1, 2, residual, 32, generator=g)
    vr = torch.randn(1, 2, residual, 32, generator=g)
    qk = quant_i.quantize_reference(k, bits, 32, "channel")
    qv = quant_i.quantize_reference(v, bits, 16, "token")
    got = quant_i.decode_attention(q, qk, qv, kr, vr, backend="triton")
    want = quant_i.decode_attention_reference(q, qk, qv, kr, vr)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_decode_reference_equals_full_precision_attention_on_dequantized_cache():
    g = torch.Generator().manual_seed(1)
    k, v = torch.randn(1, 1, 32, 8, generator=g), torch.randn(1, 1, 32, 8, generator=g)
    q = torch.randn(1, 1, 1, 8, generator=g)
    qk, qv = quant_i.quantize_reference(k, 4, 32, "channel"), quant_i.quantize_reference(v, 4, 8, "token")
    kd, vd = quant_i.dequantize(qk), quant_i.dequantize(qv)
    want = torch.softmax(q @ kd.transpose(-1, -2) / math.sqrt(8), -1) @ vd
    torch.testing.assert_close(quant_i.decode_attention_reference(q, qk, qv), want)


# ------------------------------------------------------------------ CUDA (compiled kernels)
cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


@cuda
def test_cuda_kernels_match_references():
    attention_scores, kv_quant = scores_i, quant_i

    q = torch.randn(1, 8, 64, 128, device="cuda", dtype=torch.float16)
    k = torch.randn(1, 2, 1024, 128, device="cuda", dtype=torch.float16)
    torch.testing.assert_close(
        attention_scores.accumulated_attention(q, k),
        attention_scores.accumulated_attention_reference(q, k), rtol=2e-3, atol=2e-3,
    )
    kq = kv_quant.quantize(k, 2, 32, "channel")
    torch.testing.assert_close(kq.codes, kv_quant.quantize_reference(k, 2, 32, "channel").codes)
    vq = kv_quant.quantize(k, 2, 32, "token")
    q1 = q[:, :, :1]
    torch.testing.assert_close(
        kv_quant.decode_attention(q1, kq, vq), kv_quant.decode_attention_reference(q1, kq, vq), rtol=2e-3, atol=2e-3
    )

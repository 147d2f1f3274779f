"""Decode attention on the packed KIVI cache, routed through transformers' AttentionInterface.

Sets ``TRITON_INTERPRET=1`` before the first ``import triton`` (see tests/test_kernels.py) so the fused
dequantize-decode kernel runs on CPU; if triton was imported earlier in this pytest process, the
interpreter test reruns this file in a fresh subprocess.
"""
from __future__ import annotations

import pytest

from tests.triton_interp import request_interpreter, rerun_with_interpreter

torch = pytest.importorskip("torch")

HAS_CUDA = torch.cuda.is_available()
request_interpreter(HAS_CUDA)

triton = pytest.importorskip("triton")
pytest.importorskip("transformers")
import triton.language as tl  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from lvlm_atlas.kernels import kv_quant  # noqa: E402
from lvlm_atlas.methods.algorithms.kivi import KIVI  # noqa: E402
from lvlm_atlas.methods.algorithms.snapkv import SnapKV  # noqa: E402
from lvlm_atlas.methods.kv import attention_route  # noqa: E402
from lvlm_atlas.methods.kv.layers import QuantizedEvictableLayer  # noqa: E402
from tests.methods_util import bundle, inputs  # noqa: E402

INTERPRETED = isinstance(tl.zeros, InterpretedFunction) and isinstance(kv_quant._decode_kernel, InterpretedFunction)
NEW = 6


def _generate(method, model_name="tiny-llava", attn="sdpa"):
    b = bundle(model_name, attn=attn)
    inp = inputs(b)
    with method.apply(b.model), torch.no_grad():
        fused = method.kv.fused
        counts = dict(fused.counts) if fused is not None else None
        out = b.model.generate(**inp, max_new_tokens=NEW, do_sample=False, output_scores=True,
                               return_dict_in_generate=True)
        if fused is not None:
            counts = {k: fused.counts[k] - counts[k] for k in counts}
    return out, counts, b.model


def _kivi(**kw):
    return KIVI(kv_bits=2, kv_group=16, kv_residual=16, **kw)


def _assert_same_decoding(fused_out, plain_out, tol):
    assert torch.equal(fused_out.sequences, plain_out.sequences)
    for a, b in zip(fused_out.scores, plain_out.scores):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("model_name,attn", [("tiny-llava", "sdpa"), ("tiny-qwen2-vl", "eager")])
def test_fused_path_matches_dequantize_then_attention_and_is_restored(model_name, attn):
    """CPU: the fused route (torch reference of the kernel) decodes like the dequantize-then-attend path."""
    plain, none_counts, model = _generate(_kivi(kv_fused_decode=False), model_name, attn)
    assert none_counts is None
    fused, counts, model = _generate(_kivi(), model_name, attn)
    n_layers = len(model.model.language_model.layers)
    assert counts["fused"] == (NEW - 1) * n_layers          # every decode step of every layer
    assert counts["base"] == n_layers                       # the prefill
    _assert_same_decoding(fused, plain, 1e-4)
    # the model's own attention implementation is back, and no module is routed any more
    assert model.model.language_model.config._attn_implementation == attn
    assert not any(m in attention_route._ROUTES for m in model.modules())


@pytest.mark.parametrize("bits", [2, 4])
def test_fused_path_with_eviction_and_the_layer_hands_over_only_its_residual(bits):
    m = SnapKV(budget=0.5, window=8, kv_bits=bits, kv_group=16, kv_residual=16)
    fused, counts, _ = _generate(m)
    plain, _, _ = _generate(SnapKV(budget=0.5, window=8, kv_bits=bits, kv_group=16, kv_residual=16,
                                   kv_fused_decode=False))
    assert counts["fused"] > 0
    _assert_same_decoding(fused, plain, 1e-4)
    layer = m.kv.cache.layers[0]
    assert isinstance(layer, QuantizedEvictableLayer) and layer.defer_dequant and layer.quantized_len > 0
    k, v = torch.randn(1, layer.keys.shape[1], 1, layer.keys.shape[3]), torch.randn(1, layer.keys.shape[1], 1, layer.keys.shape[3])
    got_k, _ = layer.update(k, v)
    assert got_k.shape[2] == layer.keys.shape[2] < layer.held   # residual window only, no dequantized copy


def test_attention_implementation_restored_on_exception_and_refused_outside_context():
    b = bundle("tiny-llava")
    lm = b.model.model.language_model
    with pytest.raises(RuntimeError, match="boom"):
        with _kivi().apply(b.model):
            assert lm.config._attn_implementation == attention_route.implementation_name("sdpa")
            raise RuntimeError("boom")
    assert lm.config._attn_implementation == "sdpa"
    attn = lm.layers[0].self_attn
    q = torch.randn(1, 4, 1, attn.head_dim)
    with pytest.raises(RuntimeError, match="outside the context"):
        attention_route.kv_attention(attn, q, q, q, None, scaling=1.0)


def test_unsupported_base_implementation_keeps_the_dequantize_path(monkeypatch):
    b = bundle("tiny-llava")
    monkeypatch.setattr(attention_route.KVAttentionRoute, "supported", lambda self: False)
    out, counts, _ = _generate(_kivi())
    assert counts is None and len(out.scores) == NEW
    assert b.model.model.language_model.config._attn_implementation == "sdpa"


@pytest.mark.skipif(not INTERPRETED, reason="triton was imported before TRITON_INTERPRET=1; see the subprocess test")
def test_triton_fused_decode_logits_match_dequantize_then_sdpa(monkeypatch):
    calls = []
    real = kv_quant._triton_decode

    def recorded(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(kv_quant, "_triton_decode", recorded)
    fused, counts, _ = _generate(_kivi(kv_backend="triton"))
    assert calls and counts["fused"] > 0
    plain, _, _ = _generate(_kivi(kv_fused_decode=False))
    _assert_same_decoding(fused, plain, 1e-3)


@pytest.mark.skipif(INTERPRETED or HAS_CUDA, reason="the interpreter test already ran in this process")
def test_interpreter_fused_decode_test_in_fresh_process():
    assert "1 passed" in rerun_with_interpreter(__file__, "-k", "triton_fused_decode_logits")

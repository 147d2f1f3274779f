"""The attention-guided in-LLM methods (FastV, PyramidDrop, SparseVLM) score through the kernel dispatch.

Like tests/test_kernels.py, this module sets ``TRITON_INTERPRET=1`` before the first ``import triton``
so the Triton kernels run on CPU; if triton was imported earlier in this pytest process, the
interpreter test reruns this file in a fresh subprocess.
"""
from __future__ import annotations

import types

import pytest

from tests.triton_interp import request_interpreter, rerun_with_interpreter

torch = pytest.importorskip("torch")

HAS_CUDA = torch.cuda.is_available()
request_interpreter(HAS_CUDA)

triton = pytest.importorskip("triton")
pytest.importorskip("transformers")
import triton.language as tl  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from lvlm_atlas.kernels import attention_scores, dispatch  # noqa: E402
from lvlm_atlas.methods import registry  # noqa: E402
from tests.methods_util import bundle, inputs  # noqa: E402

INTERPRETED = isinstance(tl.zeros, InterpretedFunction) and isinstance(attention_scores._lse_kernel, InterpretedFunction)
ATTENTION_GUIDED = ["fastv", "pyramiddrop", "sparsevlm"]


def _kept(method: str, model: str = "tiny-llava", **params) -> dict[str, list[int]]:
    b = bundle(model)
    m = registry.create(method, budget=8, **params)
    with m.apply(b.model) as s:
        b.model(**inputs(b))
    return {k: v.tolist() for k, v in s.last.kept.items()}


def test_auto_dispatch_picks_triton_exactly_when_cuda_tensors(monkeypatch):
    cuda_t, cpu_t = types.SimpleNamespace(is_cuda=True), types.SimpleNamespace(is_cuda=False)
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.setattr(dispatch, "interpreter_enabled", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dispatch.use_triton(cuda_t, cuda_t) is True
    assert dispatch.use_triton(cuda_t, cpu_t) is False          # mixed devices: the torch path
    assert dispatch.use_triton(cuda_t, backend="torch") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dispatch.use_triton(cuda_t) is False
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        dispatch.use_triton(cpu_t, backend="triton")
    with pytest.raises(ValueError, match="unknown backend"):
        dispatch.use_triton(cpu_t, backend="cuda")


@pytest.mark.parametrize("method", ATTENTION_GUIDED)
def test_methods_route_scores_to_the_triton_kernel_when_tensors_are_on_cuda(monkeypatch, method):
    """Pretend the tensors are on CUDA: the methods' scores must come from the Triton launchers
    (here recorded and answered by the exact torch path), and the selection must not change."""
    want = _kept(method, score_backend="torch")
    calls: list[str] = []
    chunked_colsum, chunked_lse = attention_scores._chunked_torch, attention_scores._chunked_lse

    def fake_colsum(q, k, pos, scale):
        calls.append("colsum")
        return chunked_colsum(q, k, pos, scale)

    def fake_lse(q, k, pos, scale):
        calls.append("lse")
        return chunked_lse(q, k, pos, scale)

    def fail_torch(*args, **kwargs):
        raise AssertionError("the torch path ran although the tensors count as CUDA tensors")

    monkeypatch.setattr(dispatch, "tensors_on_cuda", lambda *t: True)
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.setattr(attention_scores, "_triton_accumulated_attention", fake_colsum)
    monkeypatch.setattr(attention_scores, "_triton_row_lse", fake_lse)
    got = _kept(method, score_backend="auto")
    assert "colsum" in calls        # (SparseVLM's raters come from embedding similarity now, as officially)
    assert got == want
    monkeypatch.setattr(attention_scores, "_chunked_torch", fail_torch)
    monkeypatch.setattr(attention_scores, "_chunked_lse", fail_torch)
    assert _kept(method, score_backend="auto") == want          # no torch-path call at all


def test_score_backend_is_validated():
    with pytest.raises(ValueError, match="score_backend"):
        registry.create("fastv", score_backend="cuda")


@pytest.mark.skipif(not INTERPRETED, reason="triton was imported before TRITON_INTERPRET=1; see the subprocess test")
@pytest.mark.parametrize("method,model", [("fastv", "tiny-llava"), ("fastv", "tiny-qwen2-vl"),
                                          ("sparsevlm", "tiny-llava")])
def test_triton_interpreter_selection_equals_torch_path(monkeypatch, method, model):
    calls = []
    real = attention_scores._triton_accumulated_attention

    def recorded(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(attention_scores, "_triton_accumulated_attention", recorded)
    got = _kept(method, model, score_backend="triton")
    assert calls, "the Triton kernel did not run"
    assert got == _kept(method, model, score_backend="torch")


@pytest.mark.skipif(INTERPRETED or HAS_CUDA, reason="the interpreter test already ran in this process")
def test_interpreter_selection_test_in_fresh_process():
    assert "3 passed" in rerun_with_interpreter(__file__, "-k", "interpreter_selection_equals")

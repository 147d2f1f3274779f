"""Choose between a Triton kernel and its torch reference.

Triton runs on CUDA tensors, or on CPU tensors when the process was started with
``TRITON_INTERPRET=1`` (the interpreter the tests use). Everything else uses the reference.
"""

from __future__ import annotations

import functools
import os

import torch


@functools.cache
def triton_available() -> bool:
    """True when ``import triton`` works in this environment."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # pragma: no cover - depends on the install
        return False
    return True


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def tensors_on_cuda(*tensors) -> bool:
    """True when CUDA is usable and every tensor lives on a CUDA device."""
    return bool(tensors) and torch.cuda.is_available() and all(t.is_cuda for t in tensors)


def use_triton(*tensors: torch.Tensor, backend: str = "auto") -> bool:
    """Decide the backend for an op on ``tensors``.

    ``backend``: ``"auto"`` (Triton when the tensors are on CUDA, else torch -- also under the
    interpreter, which is for tests), ``"triton"`` (raise if it cannot run) or ``"torch"``.
    """
    if backend == "torch":
        return False
    on_cuda = tensors_on_cuda(*tensors)
    runnable = triton_available() and (on_cuda or interpreter_enabled())
    if backend == "triton":
        if not runnable:
            raise RuntimeError(
                "backend='triton' needs triton and CUDA tensors, or TRITON_INTERPRET=1 set before "
                "triton is imported (CPU interpreter); use backend='auto' or 'torch' otherwise"
            )
        return True
    if backend != "auto":
        raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'triton' or 'torch'")
    return runnable and on_cuda

"""Detect host-device synchronisations in a block of code: `with no_host_sync(): ...` raises HostSyncError
at the first operation that would make the host wait for the device.

On CPU nothing ever waits, so a sync-free CPU run proves nothing by itself; this guard makes the same
operations fail on CPU: reading a tensor's value on the host (`.item()`, `int()`, `bool()`, `float()`)
and data-dependent output shapes (`nonzero`, boolean-mask indexing, `masked_select`, `unique`), all seen
at the dispatcher. (`.tolist()` bypasses the dispatcher; the tests additionally make it fail.) On CUDA
it also switches `torch.cuda.set_sync_debug_mode("error")` on for the block. Used by the tests and the
GPU check; never installed around timed runs.
"""
from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class HostSyncError(RuntimeError):
    pass


SYNC_OPS = {
    "aten::_local_scalar_dense": "reads a tensor value on the host (.item(), int(), bool(), float())",
    "aten::nonzero": "has a data-dependent output shape (nonzero / boolean indexing)",
    "aten::masked_select": "has a data-dependent output shape (masked_select)",
    "aten::_unique2": "has a data-dependent output shape (unique)",
    "aten::unique_consecutive": "has a data-dependent output shape (unique_consecutive)",
    "aten::unique_dim": "has a data-dependent output shape (unique)",
    "aten::lift_fresh": "builds a tensor from host data (torch.tensor(...): a blocking host-to-device copy on CUDA)",
}


class _Guard(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in SYNC_OPS:
            raise HostSyncError(f"{name} {SYNC_OPS[name]} inside a block that must not synchronise")
        if name == "aten::index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                         for i in (args[1] if len(args) > 1 else []) if i is not None):
            raise HostSyncError("aten::index with a boolean mask has a data-dependent output shape")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def no_host_sync(device: torch.device | str | None = None):
    """Fail on any host-device synchronisation inside the block (see the module docstring)."""
    cuda = device is not None and torch.device(device).type == "cuda"
    previous = torch.cuda.get_sync_debug_mode() if cuda else None
    if cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        with _Guard():
            yield
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(previous)

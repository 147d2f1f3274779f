"""No host-device synchronisation in the hot paths, and decode steps that cost what the unmodified model's do.

On CPU nothing waits, so the guard (lvlm_atlas.methods.syncguard) makes the operations that would wait on
a GPU fail instead: host reads of tensor values, data-dependent shapes, tensors built from host data, and
(here, test-only) `.tolist()`. On a GPU the same guard also turns on `torch.cuda.set_sync_debug_mode("error")`.
"""
from __future__ import annotations

import collections
import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lvlm_atlas.methods import registry
from lvlm_atlas.methods.syncguard import HostSyncError, no_host_sync
from lvlm_atlas.methods.transformers_adapter import DynamicCache, cache_kwargs
from tests.methods_util import bundle, inputs

TOKEN = ["fastv", "visionzip", "divprune", "pyramiddrop", "sparsevlm", "random", "pool", "prumerge_plus"]
KV = ["snapkv", "pyramidkv", "streamingllm", "h2o", "look_m", "vl_cache", "sparsemm", "kivi"]
# Selections still reading values on the host (one sync per request at prefill, not per step); each is
# listed with where, so that fixing one turns its xfail into a failure that asks to move it here.
SELECTION_SYNCS = {
    "fastv": "builds its query row with torch.tensor (host-to-device copy)",
    "pyramiddrop": "builds its query row with torch.tensor (host-to-device copy)",
    "visionzip": "builds index tensors from host data",
    "divprune": "reads similarity values on the host in its greedy loop",
    "sparsevlm": "text_rows_after_image uses nonzero and a host read of the first visual row",
    "prumerge_plus": "builds index tensors from host data",
    "look_m": "evicted_index uses a boolean mask (nonzero)",
    "vl_cache": "reads its sparsity statistics on the host to allocate layer budgets",
    "sparsemm": "reads head budgets on the host (.tolist) to size each head",
}


def _params(name):
    if name == "kivi":
        return {}
    if name in ("snapkv", "sparsemm"):   # the official rule refuses a budget at or below the window (32)
        return {"budget": 0.25, "window": 8}
    return {"budget": 8} if name in TOKEN else {"budget": 0.25}


@contextlib.contextmanager
def strict_guard(monkeypatch):
    def tolist(self, *a, **k):
        raise HostSyncError(".tolist() reads a tensor on the host")

    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "tolist", tolist)
        with no_host_sync():
            yield


def _prefill_and_steps(b, inp, steps, guard=None):
    cache = DynamicCache(config=b.model.config.get_text_config())
    out = b.model(**inp, **cache_kwargs(b.model, cache), use_cache=True)
    tok = out.logits[:, -1:].argmax(-1)
    for _ in range(steps):
        with guard() if guard else contextlib.nullcontext():
            out = b.model(input_ids=tok, **cache_kwargs(b.model, cache), use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)     # stays on the device: greedy without a host read
    return cache, tok


def test_the_guard_catches_each_kind_of_sync(monkeypatch):
    x = torch.arange(6.0)
    for bad in (lambda: x[0].item(), lambda: int(x[1]), lambda: bool(x[2] > 1), lambda: x.nonzero(),
                lambda: x[x > 2], lambda: torch.tensor([1, 2]), lambda: x.tolist(), lambda: torch.unique(x)):
        with pytest.raises(HostSyncError):
            with strict_guard(monkeypatch):
                bad()
    with strict_guard(monkeypatch):
        (x * 2).sum().argmax()           # pure device work passes


@pytest.mark.parametrize("name", [None] + TOKEN + KV)
def test_decode_steps_never_synchronise(name, monkeypatch):
    b = bundle("tiny-llava")
    method = registry.create(name, **_params(name)) if name else None
    with (method.apply(b.model) if method else contextlib.nullcontext()), torch.no_grad():
        _prefill_and_steps(b, inputs(b), 3, guard=lambda: strict_guard(monkeypatch))


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, raises=HostSyncError, reason=SELECTION_SYNCS[n]))
    if n in SELECTION_SYNCS else n for n in TOKEN + [n for n in KV if n != "kivi"]])
def test_selection_never_synchronises(name, monkeypatch):
    b = bundle("tiny-llava")
    method = registry.create(name, **_params(name))
    for hook in ("select", "select_in_llm", "on_prefill", "end_prefill"):
        if hasattr(method, hook):
            original = getattr(method, hook)

            def guarded(*a, _f=original, **k):
                with strict_guard(monkeypatch):
                    return _f(*a, **k)

            object.__setattr__(method, hook, guarded)
    with method.apply(b.model), torch.no_grad():
        _prefill_and_steps(b, inputs(b), 1)


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count[func._schema.name] += 1
        return func(*args, **(kwargs or {}))


def _ops_per_step(b, inp, method) -> int:
    with (method.apply(b.model) if method else contextlib.nullcontext()), torch.no_grad():
        cache, tok = _prefill_and_steps(b, inp, 2)
        counter = _Ops()
        with counter:
            b.model(input_ids=tok, **cache_kwargs(b.model, cache), use_cache=True)
    return sum(counter.count.values())


# Per-step cost relative to DynamicCache. The goal (<= 1.15x) is for the cache layers themselves: methods that
# evict at prefill only meet it (1.04x here). Methods whose RULE works at every step do more by definition:
# StreamingLLM drops one entry per step once the window is full (slices of keys, values and positions),
# H2O scores the new query against every held entry and evicts at every step; KIVI's CPU path unpacks codes
# with the torch reference of the fused Triton decode kernel (one kernel launch per layer on a GPU).
LIMITS = {"streamingllm": 1.2, "h2o": 2.0, "kivi": 2.0}


@pytest.mark.parametrize("name", KV)
def test_decode_step_ops_stay_close_to_the_unmodified_cache(name):
    b = bundle("tiny-llava")
    inp = inputs(b)
    base = _ops_per_step(b, inp, None)
    ours = _ops_per_step(b, inp, registry.create(name, **_params(name)))
    assert ours <= LIMITS.get(name, 1.15) * base, (name, ours, base)

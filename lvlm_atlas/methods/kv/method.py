"""Base class of the KV-cache methods: a dataclass of parameters that is also a :class:`KVPolicy`.

``budget`` is the KV entries kept per layer and head: an int is a count, a float in (0, 1] a
fraction of the context (the prompt for prefill-time methods; the tokens seen so far for methods
that also evict while decoding). Methods that allocate unevenly across
layers (PyramidKV, VL-Cache) keep the *average* at the budget. ``kv_bits`` (2 or 4) stores the kept
entries in the KIVI quantized cache (keys per channel, values per token, ``kv_group`` elements per
group, ``kv_residual`` recent tokens in full precision); None keeps them in full precision.
``kv_fused_decode`` (default on) makes decode steps attend on the packed cache through
:mod:`methods.kv.attention_route` (sdpa / eager models; others keep the dequantize-then-attend path); ``kv_backend`` picks the kernels
of the quantized cache (auto: Triton on CUDA, torch reference elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from lvlm_atlas.methods.base import Method
from lvlm_atlas.methods.kv.controller import KVController, KVPolicy, KVRequest, QuantSpec
from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.stages import Stage


@dataclass
class KVMethod(Method, KVPolicy):
    """Applied like every method: ``with m.apply(model) as session: model.generate(...)``; the
    compressed cache of the latest request is ``m.kv.cache`` (``m.kv`` is the :class:`KVController`)."""

    kv_bits: int | None = None
    kv_group: int = 32
    kv_residual: int = 32
    kv_fused_decode: bool = True
    kv_backend: str = "auto"
    score_backend: str = "auto"

    stage: ClassVar[Stage] = Stage.KV
    supports_batch: ClassVar[bool] = True   # tested with batches of equal-length requests (no padding)

    def __post_init__(self):
        if self.kv_bits is not None and self.kv_bits not in (2, 4):
            raise ValueError(f"kv_bits must be 2, 4 or None (full precision), got {self.kv_bits}")
        for field in ("score_backend", "kv_backend"):
            if getattr(self, field) not in ("auto", "triton", "torch"):
                raise ValueError(f"{field} must be auto, triton or torch, got {getattr(self, field)!r}")
        self._request: KVRequest | None = None
        self.kv: KVController | None = None

    # -- budgets ------------------------------------------------------------------------------------
    def begin_request(self, request: KVRequest) -> None:
        self._request = request

    def capacity(self, tokens: int | None = None) -> int:
        """Entries to keep out of ``tokens`` (default: the prompt length) per layer and head -- the
        average, for layer-allocating methods. Decode-time methods pass the tokens seen so far, so
        a fractional budget stays a fraction of the growing context (and 1.0 never evicts)."""
        n = self._request.prompt_len if tokens is None else tokens
        return resolve_budget(self.budget, n)

    # -- application --------------------------------------------------------------------------------
    def quant_spec(self) -> QuantSpec | None:
        if self.kv_bits is None:
            return None
        return QuantSpec(bits=self.kv_bits, group=self.kv_group, residual=self.kv_residual,
                         fused_decode=self.kv_fused_decode, backend=self.kv_backend)

    def install(self, session) -> None:
        """Attach the cache hooks to the session (removed with the session's own hooks)."""
        self.kv = KVController(session, self, self.quant_spec(), score_backend=self.score_backend)
        self.kv.open()


def window_force(held: int, window: int, device) -> torch.Tensor:
    """``(held,)`` mask of the last ``window`` entries."""
    mask = torch.zeros(held, dtype=torch.bool, device=device)
    if window > 0:
        mask[-window:].fill_(True)   # fill_ with a Python scalar: no host-to-device copy
    return mask

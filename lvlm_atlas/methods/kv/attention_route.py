"""The compressed cache's attention route, plugged in through transformers' attention-function registry.

Two things need more than "hand the model's SDPA the held keys/values":

* **Quantized cache, decode steps.** Without this route, :class:`~methods.kv.layers.QuantizedEvictableLayer`
  hands the model dequantized keys and values at every step. With it, on a decode step (one query)
  whose layer holds quantized entries and whose masks hide nothing, :func:`kv_attention` calls
  :func:`kernels.kv_quant.decode_attention` on the packed codes plus the full-precision residual
  window (Triton on CUDA: codes are dequantized inside the kernel's tiles; the torch reference on CPU).
* **Per-head budgets in a rectangular cache** (SparseMM): a layer holds as many entries per head as
  its largest head budget; a head with a smaller budget carries padding entries flagged in
  ``layer.valid``. The route adds a per-head mask so padding gets no attention.

Every other call (prefill, layers without quantized entries or padding, padded batches) goes to the
base implementation (``sdpa`` or ``eager``) unchanged.

:func:`kv_attention` is registered with transformers' public ``AttentionInterface`` under
``lvlm_atlas_kv_<base>`` (and the base implementation's mask function under the same name in
``AttentionMaskInterface``). The model is switched to that name with its public
``set_attn_implementation`` for the text decoder only, when the method's context opens, and switched
back when it closes; nothing in the library is patched. The registered names are inert: a model uses
them only while one of our contexts has set them, and the function refuses modules no context routed.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lvlm_atlas.kernels.kv_quant import decode_attention
from lvlm_atlas.methods.kv.layers import QuantizedEvictableLayer
from lvlm_atlas.methods.transformers_adapter import (ALL_ATTENTION_FUNCTIONS, ALL_MASK_ATTENTION_FUNCTIONS,
                                                     AttentionInterface, AttentionMaskInterface,
                                                     attn_implementation, eager_attention_function)

PREFIX = "lvlm_atlas_kv_"
BASES = ("sdpa", "eager")


def implementation_name(base: str) -> str:
    return PREFIX + base


@dataclass
class _Route:
    layer_of: Callable[[int], object]   # layer_idx -> cache layer of the current request (or None)
    base: str
    backend: str
    counts: dict
    fused_decode: bool = True


_ROUTES: "weakref.WeakKeyDictionary[nn.Module, _Route]" = weakref.WeakKeyDictionary()


def _register_names() -> None:
    for base in BASES:
        name = implementation_name(base)
        if name not in ALL_ATTENTION_FUNCTIONS:
            AttentionInterface.register(name, kv_attention)
        if name not in ALL_MASK_ATTENTION_FUNCTIONS:
            AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])


def _base_function(module: nn.Module, base: str):
    if base == "eager":
        return eager_attention_function(module)  # each model file defines its own eager path
    return ALL_ATTENTION_FUNCTIONS[base]


def _mask_hides_nothing(mask) -> bool:
    if mask is None:
        return True
    if not torch.is_tensor(mask):
        return False
    if mask.dtype == torch.bool:
        return bool(mask.all())
    return bool((mask == 0).all())


def _head_mask(valid: torch.Tensor, q_len: int, num_q_heads: int) -> torch.Tensor:
    """``(B, Hq, q_len, held)`` bool: causal over the held entries (queries are the last ``q_len``)
    and, per query head, only the entries its KV head really holds."""
    B, Hkv, held = valid.shape
    per_head = valid.repeat_interleave(num_q_heads // Hkv, dim=1)[:, :, None, :]
    rows = torch.arange(q_len, device=valid.device)[:, None] + (held - q_len)
    causal = torch.arange(held, device=valid.device)[None, :] <= rows
    return per_head & causal[None, None]


def _combine_masks(attention_mask, head_mask: torch.Tensor, base: str, dtype: torch.dtype):
    if base == "eager":   # additive float mask
        lowest = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=head_mask.device)
        kept = torch.zeros((), dtype=dtype, device=head_mask.device) if attention_mask is None else attention_mask
        return torch.where(head_mask, kept, lowest)
    if attention_mask is None:
        return head_mask
    if attention_mask.dtype != torch.bool:
        raise TypeError(f"expected a boolean sdpa mask, got {attention_mask.dtype}")
    return attention_mask & head_mask


def kv_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask, scaling: float | None = None, dropout: float = 0.0, **kwargs):
    """An ``AttentionInterface`` function: ``query`` ``(B, Hq, q, D)`` -> ``((B, q, Hq, D), weights)``."""
    route = _ROUTES.get(module)
    if route is None:
        raise RuntimeError(
            f"{type(module).__name__} is set to a {PREFIX}* attention implementation outside the context of a "
            "KV-cache method; use the method's `with method.apply(model):` block"
        )
    layer = route.layer_of(module.layer_idx)
    quantized = isinstance(layer, QuantizedEvictableLayer)
    valid = getattr(layer, "valid", None)
    if (route.fused_decode and quantized and valid is None and query.shape[2] == 1 and layer.quantized_len > 0 and not module.training
            and _mask_hides_nothing(attention_mask)):
        out = decode_attention(query, layer.qkeys, layer.qvalues, layer.keys, layer.values,
                               scale=scaling, backend=route.backend)
        route.counts["fused"] += 1
        return out.to(query.dtype).transpose(1, 2).contiguous(), None
    if quantized and key.shape[-2] != layer.held:
        key, value = layer.full_precision_kv()   # the layer handed over only its residual window
    if valid is not None and valid.shape[-1] == key.shape[-2]:
        attention_mask = _combine_masks(attention_mask, _head_mask(valid, query.shape[2], query.shape[1]),
                                        route.base, query.dtype)
        route.counts["head_masked"] += 1
    route.counts["base"] += 1
    return _base_function(module, route.base)(module, query, key, value, attention_mask, scaling=scaling,
                                              dropout=dropout, **kwargs)


def _text_config_key(model: nn.Module, lm: nn.Module) -> str | None:
    if lm.config is model.config:
        return None
    for key in getattr(model.config, "sub_configs", {}):
        if getattr(model.config, key, None) is lm.config:
            return key
    raise TypeError(f"cannot find the text decoder's config among the sub-configs of {type(model).__name__}")


class KVAttentionRoute:
    """Route the decoder's attention through :func:`kv_attention` while open; restore on close."""

    def __init__(self, model: nn.Module, lm: nn.Module, layer_of: Callable[[int], object], backend: str = "auto",
                 fused_decode: bool = True):
        self.model, self.lm, self.layer_of, self.backend = model, lm, layer_of, backend
        self.fused_decode = fused_decode   # False: only per-head masking (quantized layers are dequantized)
        self.counts = {"fused": 0, "base": 0, "head_masked": 0}
        self._original: str | None = None
        self._key: str | None = None
        self._modules: list[nn.Module] = []

    @property
    def base(self) -> str:
        return attn_implementation(self.lm.config)

    def supported(self) -> bool:
        """True when the decoder runs on a base implementation this wrapper can fall back to."""
        return self.base in BASES

    def open(self) -> "KVAttentionRoute":
        base = self.base
        if base not in BASES:
            raise ValueError(f"the KV-cache attention route wraps {', '.join(BASES)} attention, not {base!r}; "
                             "load the model with attn_implementation='sdpa' or 'eager'")
        _register_names()
        self._key = _text_config_key(self.model, self.lm)
        route = _Route(self.layer_of, base, self.backend, self.counts, self.fused_decode)
        for layer in self.lm.layers:
            _ROUTES[layer.self_attn] = route
            self._modules.append(layer.self_attn)
        self._original = base
        try:
            self._set(implementation_name(base))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._original is not None and attn_implementation(self.lm.config) != self._original:
            self._set(self._original)
        self._original = None
        while self._modules:
            _ROUTES.pop(self._modules.pop(), None)

    def _set(self, name: str) -> None:
        if self._key is None:
            self.model.set_attn_implementation(name)
        else:
            self.model.set_attn_implementation({self._key: name})
        if attn_implementation(self.lm.config) != name:
            raise RuntimeError(f"{type(self.model).__name__} did not switch its text decoder to {name!r}")

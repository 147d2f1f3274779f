"""Cache layers for a KV cache that can shrink: eviction (any method) and KIVI-style quantized storage.

Both subclass transformers' public ``DynamicLayer`` and are installed into the ``Cache`` object that
``generate`` created (its ``layers`` list), so the model code is untouched.

Positions stay right after eviction the way transformers' own sliding-window layer does it:
``get_seq_length`` reports every token seen (so new tokens get the next rotary position), and
``get_mask_sizes`` reports the physically held length plus a virtual offset (``seen - held``), so the
causal mask lines the new queries up after the held entries.

Each layer also keeps ``positions`` (``(B, Hkv, held)`` original token index of every held entry,
per head, because heads may keep different tokens) and optional per-entry ``scores`` that
decode-time methods (H2O) accumulate.
"""

from __future__ import annotations

import torch
from lvlm_atlas.methods.transformers_adapter import DynamicLayer

from lvlm_atlas.kernels.kv_quant import QuantizedTensor, dequantize, quantize


class EvictableLayer(DynamicLayer):
    """A ``DynamicLayer`` whose entries can be dropped per head while generation goes on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = 0
        self.positions: torch.Tensor | None = None  # (B, Hkv, held) long
        self.scores: torch.Tensor | None = None  # (B, Hkv, held) float32, owned by the policy
        self.valid: torch.Tensor | None = None  # (B, Hkv, held) bool: False = padding (per-head budgets)
        self.evicted = 0  # entries removed so far (all heads together / Hkv)

    # -- transformers API -----------------------------------------------------------------------
    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        B, H = key_states.shape[:2]
        self.positions = torch.empty(B, H, 0, dtype=torch.long, device=key_states.device)

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        q = key_states.shape[-2]
        new_pos = torch.arange(self.seen, self.seen + q, device=key_states.device)
        self.positions = torch.cat([self.positions, new_pos.expand(*key_states.shape[:2], q)], dim=-1)
        if self.scores is not None:
            pad = torch.zeros(*key_states.shape[:2], q, dtype=self.scores.dtype, device=self.scores.device)
            self.scores = torch.cat([self.scores, pad], dim=-1)
        if self.valid is not None:
            new = torch.ones(*key_states.shape[:2], q, dtype=torch.bool, device=self.valid.device)
            self.valid = torch.cat([self.valid, new], dim=-1)
        self.seen += q
        return self._append(key_states, value_states)

    def _append(self, key_states, value_states):
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        held = self.held
        return held + query_length, self.seen - held

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a compressed KV cache cannot be cropped (assisted decoding is not supported)")

    def reset(self) -> None:
        super().reset()
        self.seen = 0
        self.positions = self.scores = self.valid = None
        self.evicted = 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        for name in ("positions", "scores", "valid"):
            t = getattr(self, name)
            if t is not None and t.numel():
                setattr(self, name, t.index_select(0, beam_idx.to(t.device)))

    # -- compression API ------------------------------------------------------------------------
    @property
    def held(self) -> int:
        """Entries held per head (the same for every head)."""
        return 0 if self.keys is None or self.keys.dim() < 3 else int(self.keys.shape[-2])

    def full_precision_kv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Held keys and values in full precision, in held order."""
        return self.keys, self.values

    def keep(self, index: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Keep entries ``index`` ``(B, Hkv, n)`` (indices into the held entries, per head).

        ``valid`` ``(B, Hkv, n)`` bool gives heads different budgets in a rectangular cache: entries
        marked False are padding that attention masks out for that head (see :attr:`valid`; it needs
        the attention route of :mod:`methods.kv.attention_route`, which the controller installs for
        policies with ``ragged_heads``).
        """
        if index.dim() != 3 or index.shape[:2] != self.keys.shape[:2]:
            raise ValueError(f"keep index must be (B, Hkv, n) = {tuple(self.keys.shape[:2])} + (n,), got {tuple(index.shape)}")
        if valid is not None and valid.shape != index.shape:
            raise ValueError(f"valid must have the shape of the index {tuple(index.shape)}, got {tuple(valid.shape)}")
        index, order = index.sort(dim=-1)  # keep the original order of the survivors
        old_valid = self.valid.gather(-1, index) if self.valid is not None else None
        if valid is not None:
            valid = valid.gather(-1, order)
            old_valid = valid if old_valid is None else old_valid & valid
        self.evicted += self.held - index.shape[-1]
        self._gather(index)
        self.positions = self.positions.gather(-1, index)
        if self.scores is not None:
            self.scores = self.scores.gather(-1, index)
        self.valid = None if old_valid is None or bool(old_valid.all()) else old_valid

    def held_per_head(self) -> torch.Tensor:
        """``(B, Hkv)`` entries each head attends to (held minus its padding)."""
        B, H = self.keys.shape[:2]
        if self.valid is None:
            return torch.full((B, H), self.held, dtype=torch.long, device=self.keys.device)
        return self.valid.sum(dim=-1)

    def _gather(self, index: torch.Tensor) -> None:
        idx = index.unsqueeze(-1).expand(-1, -1, -1, self.keys.shape[-1])
        self.keys = self.keys.gather(2, idx)
        self.values = self.values.gather(2, idx)

    def replace(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Overwrite the held keys/values (same shape): merging methods (LOOK-M) fold evicted entries in."""
        if keys.shape != self.keys.shape or values.shape != self.values.shape:
            raise ValueError("replace() keeps the shape of the held keys/values")
        self.keys, self.values = keys.to(self.keys.dtype), values.to(self.values.dtype)

    def nbytes(self) -> int:
        """Bytes of the key/value tensors actually held (bookkeeping tensors not included)."""
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values) if t is not None)


class QuantizedEvictableLayer(EvictableLayer):
    """KIVI storage: a quantized prefix plus a full-precision window of recent tokens.

    Keys are quantized per channel in groups of ``group`` tokens, values per token in groups of
    ``group`` channels, both at ``bits`` bits. The most recent tokens stay in full precision: the
    residual window holds between ``residual`` and ``residual + group - 1`` tokens; whenever it
    reaches ``residual + group``, its oldest ``group`` tokens are quantized (one key group).

    Eviction (``keep``) is allowed while nothing has been quantized yet, i.e. at the end of prefill,
    which is what the prefill-time methods (SnapKV, PyramidKV, LOOK-M, VL-Cache) need; call
    ``flush`` afterwards to quantize. On a decode step the new token is appended and full groups are
    quantized *before* attention runs, so every attention path sees the same stored state.
    ``update`` returns dequantized keys/values for the model's own attention -- unless
    ``defer_dequant`` is set (by :class:`~methods.kv.attention_route.KVAttentionRoute`): then a
    decode step returns only the full-precision residual window, and the attention function reads the
    packed prefix itself (``kernels.kv_quant.decode_attention``), or ``full_precision_kv()`` when it
    falls back.
    """

    def __init__(self, bits: int = 2, group: int = 32, residual: int = 32, backend: str = "auto",
                 defer_dequant: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.bits, self.group, self.residual, self.backend = bits, group, residual, backend
        self.defer_dequant = defer_dequant
        self.qkeys: QuantizedTensor | None = None
        self.qvalues: QuantizedTensor | None = None

    @property
    def quantized_len(self) -> int:
        return 0 if self.qkeys is None else self.qkeys.seq_len

    @property
    def held(self) -> int:
        fp = 0 if self.keys is None or self.keys.dim() < 3 else int(self.keys.shape[-2])
        return self.quantized_len + fp

    def _dequantized(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.qkeys is None:
            return self.keys, self.values
        dt = self.keys.dtype
        return (
            torch.cat([dequantize(self.qkeys, dt), self.keys], dim=-2),
            torch.cat([dequantize(self.qvalues, dt), self.values], dim=-2),
        )

    def full_precision_kv(self):
        return self._dequantized()

    def _append(self, key_states, value_states):
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        if key_states.shape[-2] == 1:  # decoding: keep the residual window bounded
            self.flush()
            if self.defer_dequant:
                return self.keys, self.values
        return self._dequantized()

    def flush(self) -> None:
        """Quantize full groups of the oldest full-precision tokens, leaving >= ``residual`` in full precision."""
        fp = self.keys.shape[-2]
        n = ((fp - self.residual) // self.group) * self.group if fp > self.residual else 0
        if n <= 0:
            return
        k_old, v_old = self.keys[:, :, :n].contiguous(), self.values[:, :, :n].contiguous()
        qk = quantize(k_old, self.bits, self.group, "channel", backend=self.backend)
        qv = quantize(v_old, self.bits, self.group if k_old.shape[-1] % self.group == 0 else k_old.shape[-1],
                      "token", backend=self.backend)
        self.qkeys = qk if self.qkeys is None else self.qkeys.cat(qk)
        self.qvalues = qv if self.qvalues is None else self.qvalues.cat(qv)
        self.keys, self.values = self.keys[:, :, n:].contiguous(), self.values[:, :, n:].contiguous()

    def keep(self, index: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        if self.qkeys is not None:
            raise RuntimeError(
                "entries already quantized cannot be evicted (key groups span tokens); combine the quantized "
                "cache with prefill-time methods (snapkv, pyramidkv, look_m, vl_cache), not decode-time ones"
            )
        super().keep(index, valid)

    def replace(self, keys, values) -> None:
        if self.qkeys is not None:
            raise RuntimeError("cannot overwrite entries that are already quantized")
        super().replace(keys, values)

    def reset(self) -> None:
        super().reset()
        self.qkeys = self.qvalues = None

    def nbytes(self) -> int:
        total = super().nbytes()
        for qt in (self.qkeys, self.qvalues):
            if qt is not None:
                total += qt.nbytes
        return total


def cache_nbytes(cache) -> int:
    """Bytes held by the key/value tensors of every layer of a transformers ``Cache``."""
    total = 0
    for layer in getattr(cache, "layers", []):
        if isinstance(layer, EvictableLayer):
            total += layer.nbytes()
        else:
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
    return total

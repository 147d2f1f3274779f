"""KIVI (Liu et al., ICML 2024): tuning-free asymmetric 2/4-bit KV cache quantization."""

from __future__ import annotations

from dataclasses import dataclass

from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.kv.method import KVMethod


@register("kivi")
@dataclass
class KIVI(KVMethod):
    """No eviction: every entry is kept, and entries older than the full-precision residual window
    are stored as ``kv_bits``-bit codes -- keys per channel (groups of ``kv_group`` tokens), values
    per token (groups of ``kv_group`` channels). To combine quantization with eviction, set
    ``kv_bits`` on a prefill-time eviction method (snapkv, pyramidkv, look_m, vl_cache) instead.
    """

    kv_bits: int | None = 2
    kv_residual: int = 32

    def __post_init__(self):
        if self.kv_bits is None:
            raise ValueError("kivi needs kv_bits (2 or 4)")
        if self.budget is not None:
            raise ValueError("kivi keeps every entry (it quantizes, it does not evict): drop the budget, or use "
                             "snapkv/pyramidkv with kv_bits=2 to evict and quantize")
        super().__post_init__()

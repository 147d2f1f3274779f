"""The one place that knows transformers' internals.

Everything the methods need from the library beyond its public model API lives here, so that a new
transformers release is adapted in one module (supported: transformers 5.17 - 5.25, tested at both ends):

* **the cache argument**: since 5.24 the decoder stack and its layers receive the cache as ``cache``
  (``past_key_values`` is a deprecated alias on the top-level models); before, as ``past_key_values``.
  Hooks read and write it only through :func:`cache_of`, :func:`set_cache` and :func:`past_length`;
  callers pass it with :func:`cache_kwargs` and read it back with :func:`output_cache`.
* **cache classes**: ``Cache``, ``DynamicCache`` and ``DynamicLayer`` (re-exported from here).
* **attention implementation**: the attention-function and mask registries, the config attribute that
  names the implementation, and each model file's own eager attention function.
* **model-family specifics**: where the vision tower, projector and decoder layers sit in each family
  (:class:`ModelAdapter`), Qwen's vision rotary function and window order, LLaVA-NeXT's crop counts.

Nothing here patches the library: every function reads public module boundaries or registries.
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from functools import cache

import torch
import transformers
from torch import nn
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, StaticCache
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from lvlm_atlas.methods.layout import TokenLayout

__all__ = ["ALL_ATTENTION_FUNCTIONS", "ALL_MASK_ATTENTION_FUNCTIONS", "AttentionInterface", "AttentionMaskInterface",
           "Cache", "DynamicCache", "DynamicLayer", "StaticCache", "static_cache", "decode_kwargs", "ModelAdapter", "UnsupportedModelError", "cache_kwargs",
           "cache_of", "set_cache", "check_cache_argument", "past_length", "output_cache", "attn_implementation", "eager_attention_function",
           "qwen_vision_rotary", "qwen25_window_order", "qwen25_windows", "qwen25_full_attention_blocks", "qwen_vision_blocks", "qwen_vision_qk",
           "vision_attn_implementation", "set_vision_attn_implementation", "llava_next_patch_counts", "TRANSFORMERS_VERSION"]

TRANSFORMERS_VERSION = transformers.__version__
CACHE_NAMES = ("cache", "past_key_values")   # the current name first


# --------------------------------------------------------------------------- the cache argument
def cache_of(kwargs: dict) -> Cache | None:
    """The cache a forward call (or hook) received, under whichever name the caller used."""
    for name in CACHE_NAMES:
        value = kwargs.get(name)
        if value is not None:
            return value
    return None


def cache_name(module: nn.Module) -> str:
    """The name `module.forward` takes the cache under (its own signature, not the deprecated alias)."""
    return _cache_name(type(module))


@cache
def _cache_name(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters
    for name in CACHE_NAMES:
        if name in params:
            return name
    raise UnsupportedModelError(f"{cls.__name__}.forward takes no cache argument ({', '.join(CACHE_NAMES)})")


def set_cache(module: nn.Module, kwargs: dict, cache_obj: Cache) -> dict:
    """Put `cache_obj` into a forward call's kwargs under the name `module` takes (dropping the other one)."""
    for name in CACHE_NAMES:
        kwargs.pop(name, None)
    kwargs[cache_name(module)] = cache_obj
    return kwargs


def past_length(kwargs: dict) -> int:
    """Tokens already in the cache this forward call received (0: a new request's prefill)."""
    c = cache_of(kwargs)
    return int(c.get_seq_length()) if c is not None else 0


def check_cache_argument(module: nn.Module, kwargs: dict) -> None:
    """Fail loudly if a forward call carries its cache under a name this adapter does not know: otherwise
    every decode step would look like a new request (methods would report no visual tokens, evict nothing)."""
    for name, value in kwargs.items():
        if isinstance(value, Cache) and name not in CACHE_NAMES:
            raise UnsupportedModelError(
                f"{type(module).__name__} received its KV cache as {name!r}, which this version of lvlm_atlas does "
                f"not know (transformers {TRANSFORMERS_VERSION}); install a transformers version in the tested "
                "range (see pyproject.toml) or add the name to transformers_adapter.CACHE_NAMES")


def cache_kwargs(model: nn.Module, cache_obj: Cache | None) -> dict:
    """Keyword arguments that pass `cache_obj` to `model` (empty when None)."""
    return {} if cache_obj is None else {cache_name(model): cache_obj}


def static_cache(model: nn.Module, max_len: int) -> Cache:
    """A preallocated cache of `max_len` positions (fixed shapes: what torch.compile / CUDA graphs need)."""
    return StaticCache(config=model.config.get_text_config(), max_cache_len=max_len)


def decode_kwargs(model: nn.Module, cache_obj: Cache, position: torch.Tensor) -> dict:
    """Keyword arguments of one decode step at `position` (a 1-element tensor) into a static cache."""
    return {cache_name(model): cache_obj, "cache_position": position}


def output_cache(output) -> Cache | None:
    """The cache a model output carries (``cache`` since 5.24, ``past_key_values`` before)."""
    for name in CACHE_NAMES:
        value = getattr(output, name, None)
        if value is not None:
            return value
    return None


# --------------------------------------------------------------------------- attention implementation
def attn_implementation(config) -> str:
    """The attention implementation a (text) config runs with, e.g. 'sdpa'."""
    return str(config._attn_implementation)


def eager_attention_function(module: nn.Module):
    """The eager attention function of the model file that defines `module` (GQA repeat, dtype handling)."""
    fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if fn is None:
        raise UnsupportedModelError(f"{type(module).__module__} has no eager_attention_forward to fall back to")
    return fn


# --------------------------------------------------------------------------- family specifics
def qwen_vision_rotary(module: nn.Module):
    """The vision rotary function of the Qwen2-VL / Qwen2.5-VL model file `module` comes from."""
    fn = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb_vision", None)
    if fn is None:
        raise UnsupportedModelError(f"{type(module).__module__} has no apply_rotary_pos_emb_vision")
    return fn


def qwen25_windows(vision_config, grid_thw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen2.5-VL: (window_index, cu_window_seqlens) of its vision tower: the prompt-order (raster) index of
    every merge group in the tower's window order, and the windows' cumulative patch counts."""
    from transformers.vision_utils import get_vision_window_index

    return get_vision_window_index(grid_thw, spatial_merge_size=vision_config.spatial_merge_size,
                                   window_size=vision_config.window_size, patch_size=vision_config.patch_size)


def qwen25_window_order(vision_config, grid_thw: torch.Tensor) -> torch.Tensor:
    """Qwen2.5-VL: permutation taking merged vision tokens from window order back to prompt order."""
    return torch.argsort(qwen25_windows(vision_config, grid_thw)[0])


def qwen25_full_attention_blocks(vision_config) -> frozenset[int]:
    """Qwen2.5-VL: the vision blocks that attend over the whole image (the others attend within windows)."""
    return frozenset(int(i) for i in vision_config.fullatt_block_indexes)


def llava_next_patch_counts(config, image_sizes) -> list[int]:
    """LLaVA-NeXT: crops (base image included) each image is split into."""
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    return [image_size_to_num_patches(image_size=s, grid_pinpoints=config.image_grid_pinpoints,
                                      patch_size=config.vision_config.image_size) for s in image_sizes.tolist()]


FAMILIES = {
    "llava": "llava",
    "llava_next": "llava_next",
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
}


class UnsupportedModelError(TypeError):
    pass


@dataclass
class ModelAdapter:
    model: nn.Module            # the *ForConditionalGeneration model
    family: str

    @classmethod
    def of(cls, model: nn.Module) -> "ModelAdapter":
        mt = getattr(getattr(model, "config", None), "model_type", None)
        if mt not in FAMILIES:
            raise UnsupportedModelError(
                f"model type {mt!r} is not supported by methods/; supported: {', '.join(FAMILIES)}")
        if not hasattr(model, "model") or not hasattr(model.model, "language_model"):
            raise UnsupportedModelError(
                f"expected a *ForConditionalGeneration model with .model.language_model, got {type(model).__name__}")
        return cls(model, FAMILIES[mt])

    # --- modules -------------------------------------------------------------------------------------
    @property
    def mm(self) -> nn.Module:
        """The multimodal base model (vision tower + projector + language model), e.g. LlavaModel."""
        return self.model.model

    @property
    def language_model(self) -> nn.Module:
        """The decoder stack (LlamaModel, Qwen2VLTextModel, ...): its forward input is the merged sequence."""
        return self.model.model.language_model

    @property
    def layers(self) -> nn.ModuleList:
        return self.language_model.layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def attention(self, layer: int) -> nn.Module:
        return self.layers[layer].self_attn

    @property
    def vision_tower(self) -> nn.Module:
        return self.mm.visual if self.is_qwen else self.mm.vision_tower

    @property
    def projector(self) -> nn.Module:
        return self.mm.visual.merger if self.is_qwen else self.mm.multi_modal_projector

    @property
    def is_qwen(self) -> bool:
        return self.family in ("qwen2_vl", "qwen2_5_vl")

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def attn_implementation(self) -> str:
        return attn_implementation(self.text_config)

    # --- per-request layout --------------------------------------------------------------------------
    def layout(self, input_ids: torch.Tensor, mm_kwargs: dict) -> TokenLayout:
        grids: list | None = None
        cfg = self.model.config
        if self.family == "llava":
            side = cfg.vision_config.image_size // cfg.vision_config.patch_size
            grids = None  # filled below once we know the number of images
            lay = TokenLayout.from_input_ids(input_ids, self.image_token_id)
            if all(e - s == side * side for s, e in lay.image_spans):
                lay.grids = [(side, side)] * len(lay.image_spans)
            return lay
        if self.is_qwen:
            thw = mm_kwargs.get("image_grid_thw")
            if thw is not None:
                m = cfg.vision_config.spatial_merge_size
                grids = [(int(t) * int(h) // m, int(w) // m) for t, h, w in thw.tolist()]
        return TokenLayout.from_input_ids(input_ids, self.image_token_id, grids)


# --------------------------------------------------------------------------- cache rollback
def crop_cache(cache_obj: Cache, length: int) -> None:
    """Drop every cached position from `length` on (speculative decoding: keep only accepted tokens).

    `Cache.crop` took the final length before transformers 5.2x and takes minus the tokens to remove since; a
    negative argument removes that many tokens under both readings (and 0 must never be passed: the old
    reading would empty the cache)."""
    remove = int(cache_obj.get_seq_length()) - int(length)
    if remove < 0:
        raise ValueError(f"cannot crop a cache of {cache_obj.get_seq_length()} tokens to {length}")
    if remove:
        cache_obj.crop(-remove)


# --------------------------------------------------------------------------- vision encoder blocks
def vision_encoder_layers(adapter: "ModelAdapter") -> nn.ModuleList:
    """The transformer blocks of a LLaVA-family CLIP vision tower (each: layer_norm1, self_attn with q/k/v
    projections, layer_norm2, mlp); Qwen's windowed ViT blocks (`visual.blocks`) have another layout."""
    if adapter.is_qwen:
        raise UnsupportedModelError("the CLIP block layout is LLaVA-family only; Qwen2-VL's ViT uses visual.blocks")
    tower = adapter.vision_tower
    tower = getattr(tower, "vision_model", tower)      # CLIPVisionModel wraps a CLIPVisionTransformer (older releases)
    return tower.encoder.layers


def vision_feature_layer(adapter: "ModelAdapter") -> int:
    """The hidden-state index (into embeddings + block outputs) whose features feed the projector."""
    layer = adapter.model.config.vision_feature_layer
    if not isinstance(layer, int):
        raise UnsupportedModelError("multi-layer vision features (a list of vision_feature_layer) are not supported")
    return layer


def qwen_vision_blocks(adapter: "ModelAdapter") -> nn.ModuleList:
    """The blocks of a Qwen2-VL / Qwen2.5-VL vision tower (each: norm1, attn with a fused qkv, norm2, mlp)."""
    if not adapter.is_qwen:
        raise UnsupportedModelError(f"visual.blocks is the Qwen2-VL family's ViT (got {adapter.family})")
    return adapter.vision_tower.blocks


def qwen_vision_qk(attn: nn.Module, hidden: torch.Tensor, position_embeddings) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary-embedded (seq, heads, head_dim) queries and keys of a Qwen vision attention for its input `hidden`
    (the block's norm1 output) and the (cos, sin) it received."""
    n = hidden.shape[0]
    q, k, _ = attn.qkv(hidden).reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    return qwen_vision_rotary(attn)(q, k, cos, sin)


def vision_attn_implementation(model: nn.Module) -> str:
    """The attention implementation the vision tower of a multimodal model runs with."""
    return attn_implementation(model.config.vision_config)


def set_vision_attn_implementation(model: nn.Module, name: str) -> None:
    """Switch only the vision tower's attention implementation (public `set_attn_implementation`)."""
    model.set_attn_implementation({"vision_config": name})
    if vision_attn_implementation(model) != name:
        raise UnsupportedModelError(f"{type(model).__name__} did not switch its vision tower to {name!r}")


def cached_keys(cache_obj: Cache, layer: int) -> torch.Tensor:
    """(B, kv_heads, T, head_dim) rotary-embedded keys that decoder layer `layer` holds in a DynamicCache."""
    return cache_obj.layers[layer].keys

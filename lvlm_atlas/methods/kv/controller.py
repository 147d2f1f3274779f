"""Attach a KV-cache policy to a loaded model through forward hooks (no library class is patched).

Three kinds of hooks, all removed on ``close()``:

1. a pre-hook on the top-level model records the request (which prompt positions are visual) when a
   prefill starts;
2. a pre-hook on the decoder stack swaps the layers of the (empty) ``Cache`` that ``generate`` passes
   for :class:`~methods.kv.layers.EvictableLayer` objects (or creates such a cache if none was given);
3. a post-hook on every decoder self-attention module hands the policy a :class:`KVLayerContext`
   after that layer has attended (so the prefill itself always sees the full context), and a
   post-hook on the decoder stack lets layer-budget policies finish and the quantized cache flush.

Attention scores come from :func:`kernels.attention_scores.accumulated_attention` on the keys actually
held in the cache and the queries re-projected for just the rows a policy asks for; the model keeps
running on its own SDPA / flash attention.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from lvlm_atlas.kernels.attention_scores import accumulated_attention
from lvlm_atlas.methods.kv.attention_route import KVAttentionRoute
from lvlm_atlas.methods.kv.layers import EvictableLayer, QuantizedEvictableLayer
from lvlm_atlas.methods.transformers_adapter import Cache, DynamicCache, cache_of, set_cache


@dataclass
class QuantSpec:
    """KIVI storage settings for every layer of the cache."""

    bits: int = 2
    group: int = 32
    residual: int = 32
    backend: str = "auto"
    fused_decode: bool = True  # decode steps attend on the packed cache (methods.kv.attention_route)


@dataclass
class KVRequest:
    """What a policy knows about the current request."""

    prompt_len: int
    is_visual: torch.Tensor | None  # (B, prompt_len) bool, or None when no image tokens are known
    num_layers: int
    stats: dict = field(default_factory=dict)  # policy scratch space for this request


@dataclass
class KVLayerContext:
    """One decoder layer right after its attention ran (prefill or one decode step)."""

    layer_idx: int
    layer: EvictableLayer
    attn: nn.Module
    hidden: torch.Tensor  # (B, q, D) input of the attention module (post input-norm)
    position_embeddings: tuple[torch.Tensor, torch.Tensor]
    request: KVRequest
    phase: str  # "prefill" or "decode"
    score_backend: str = "auto"

    @property
    def num_layers(self) -> int:
        return self.request.num_layers

    @property
    def q_len(self) -> int:
        return int(self.hidden.shape[1])

    @property
    def num_kv_heads(self) -> int:
        return int(self.layer.keys.shape[1])

    def queries(self, rows: torch.Tensor) -> torch.Tensor:
        """Rotary-embedded queries ``(B, Hq, len(rows), D)`` of the given rows of this forward."""
        attn = self.attn
        if getattr(attn, "q_norm", None) is not None:
            raise NotImplementedError(f"{type(attn).__name__} normalises queries; query re-projection does not support it")
        hd = attn.head_dim
        B = self.hidden.shape[0]
        q = attn.q_proj(self.hidden[:, rows]).view(B, rows.numel(), -1, hd).transpose(1, 2)
        cos, sin = self.position_embeddings
        cos, sin = cos[:, rows].unsqueeze(1), sin[:, rows].unsqueeze(1)
        half = hd // 2
        rotated = torch.cat((-q[..., half:], q[..., :half]), dim=-1)
        return q * cos + rotated * sin

    def attention_to_held(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Per held entry, the attention mass ``(B, Hq, held)`` it receives from the query ``rows``
        (default: every row of this forward), causal, computed by the score kernel."""
        if rows is None:
            rows = torch.arange(self.q_len, device=self.hidden.device)
        held = self.layer.held
        keys, _ = self.layer.full_precision_kv()
        q = self.queries(rows)
        q_positions = held - self.q_len + rows
        return accumulated_attention(q, keys, q_positions=q_positions, scale=float(self.attn.scaling),
                                     backend=self.score_backend)

    def visual_held(self) -> torch.Tensor | None:
        """``(B, Hkv, held)`` bool: which held entries are image tokens (None if unknown)."""
        vis = self.request.is_visual
        if vis is None:
            return None
        pos = self.layer.positions
        inside = pos < vis.shape[1]
        flags = vis.unsqueeze(1).expand(-1, pos.shape[1], -1).gather(-1, pos.clamp_max(vis.shape[1] - 1))
        return flags & inside


class KVPolicy:
    """What a KV method implements. Hooks edit ``ctx.layer`` in place (``keep``, ``replace``)."""

    decode_time: bool = False  # True if the policy also evicts while decoding
    ragged_heads: bool = False  # True if heads of a layer keep different numbers of entries (needs the route)

    def begin_request(self, request: KVRequest) -> None:
        """A new prefill starts."""

    def on_prefill(self, ctx: KVLayerContext) -> None:
        """Layer ``ctx.layer_idx`` holds the whole prompt and has attended."""

    def end_prefill(self, layers: list[EvictableLayer], request: KVRequest) -> None:
        """Every layer has seen the prompt (policies that allocate across layers act here)."""

    def on_decode(self, ctx: KVLayerContext) -> None:
        """One generated token has been appended to layer ``ctx.layer_idx`` and attended."""


def language_model_of(model: nn.Module) -> nn.Module:
    """The decoder stack of an LVLM (``model.model.language_model``) or of a causal LM (``model.model``)."""
    inner = getattr(model, "model", None)
    lm = getattr(inner, "language_model", None) or inner
    if lm is None or not hasattr(lm, "layers"):
        raise TypeError(f"cannot find the decoder layers of {type(model).__name__}")
    return lm


class KVController:
    """Installs a :class:`KVPolicy` (and optionally KIVI storage) on the model of a method session.

    The session is the request tracker: it decides when a new request's prefill starts (and which prompt
    positions are image tokens) and whether a forward call is a prefill or a decode step; this controller
    only swaps the cache layers and calls the policy. Its hooks are the session's, removed when it closes.
    """

    def __init__(self, session, policy: KVPolicy, quant: QuantSpec | None = None, score_backend: str = "auto"):
        self.session = session
        self.model = session.model
        self.policy = policy
        self.quant = quant
        self.score_backend = score_backend
        self.lm = language_model_of(self.model)
        self.num_layers = len(self.lm.layers)
        self.request: KVRequest | None = None
        self.cache: Cache | None = None
        self.overhead_s = 0.0  # time spent in policy hooks (scoring, selection, merging, quantizing)
        self.fused: KVAttentionRoute | None = None  # set while the packed-cache decode attention is routed

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self) -> "KVController":
        if self.quant is not None and self.policy.decode_time:
            raise ValueError(
                f"{type(self.policy).__name__} evicts while decoding, but quantized entries cannot be evicted; "
                "combine the quantized cache with a prefill-time method (snapkv, pyramidkv, look_m, vl_cache)"
            )
        ragged = bool(getattr(self.policy, "ragged_heads", False))
        if ragged or (self.quant is not None and self.quant.fused_decode):
            backend = self.quant.backend if self.quant is not None else "auto"
            fused_decode = self.quant is not None and self.quant.fused_decode
            route = KVAttentionRoute(self.model, self.lm, self._cache_layer, backend=backend,
                                     fused_decode=fused_decode)
            if route.supported() or ragged:   # per-head budgets cannot be honoured without it: open() explains
                self.fused = route.open()
                self.session.add_cleanup(self._close_route)
        s = self.session
        s.on_new_request(self._begin_request)
        s.add_forward_pre_hook(self.lm, self._on_lm_pre, with_kwargs=True)
        s.add_forward_hook(self.lm, self._on_lm_post, with_kwargs=True)
        for layer in self.lm.layers:
            s.add_forward_hook(layer.self_attn, self._on_attention_post, with_kwargs=True)
        return self

    def _close_route(self) -> None:
        if self.fused is not None:
            self.fused.close()   # restores the attention implementation the model had
            self.fused = None

    def _cache_layer(self, layer_idx: int):
        cache = self.cache
        if cache is None or layer_idx >= len(cache.layers):
            return None
        return cache.layers[layer_idx]

    @contextlib.contextmanager
    def _timed(self):
        # Host time of the policy hooks. On CUDA it counts launch work, not kernel time: a method's real
        # GPU cost is measured by `atlas bench --profile`, never by synchronising inside a timed run.
        t0 = time.perf_counter()
        try:
            with torch.profiler.record_function("atlas.method"):   # attributed by `atlas bench --profile`
                yield
        finally:
            dt = time.perf_counter() - t0
            self.overhead_s += dt
            if self.session.last is not None:
                self.session.last.method_overhead_s += dt

    # -- cache ----------------------------------------------------------------------------------
    def new_layer(self) -> EvictableLayer:
        if self.quant is None:
            return EvictableLayer()
        q = self.quant
        return QuantizedEvictableLayer(bits=q.bits, group=q.group, residual=q.residual, backend=q.backend,
                                       defer_dequant=self.fused is not None and self.fused.fused_decode)

    def _install_layers(self, cache: Cache) -> None:
        cache.layers = [self.new_layer() for _ in range(self.num_layers)]
        cache.layer_class_to_replicate = None
        self.cache = cache

    # -- hooks ----------------------------------------------------------------------------------
    def _begin_request(self, req) -> None:
        self.request = KVRequest(req.prompt_len, req.is_visual, self.num_layers)
        self.policy.begin_request(self.request)

    def _phase(self) -> str | None:
        req = self.session.request
        return None if req is None else req.phase

    def _on_lm_pre(self, module, args, kwargs):
        pkv = cache_of(kwargs)
        if self._phase() != "prefill":
            return None
        if isinstance(pkv, Cache):
            if not all(isinstance(l, EvictableLayer) for l in pkv.layers[: self.num_layers] or [None]):
                self._install_layers(pkv)
            else:
                self.cache = pkv
            return None
        use_cache = kwargs.get("use_cache")
        if use_cache is None:
            use_cache = getattr(module.config, "use_cache", True)
        if pkv is None and use_cache:
            cache = DynamicCache()
            self._install_layers(cache)
            set_cache(module, kwargs, cache)
            return args, kwargs
        return None

    def _on_attention_post(self, module, args, kwargs, output):
        pkv = cache_of(kwargs)
        if not isinstance(pkv, Cache) or module.layer_idx >= len(pkv.layers) or self.request is None:
            return None
        layer = pkv.layers[module.layer_idx]
        if not isinstance(layer, EvictableLayer):
            return None
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        q = int(hidden.shape[1])
        phase = self._phase()
        if phase == "decode" and q != 1:
            return None  # a multi-token continuation: held as is (policies act on prefill and single steps)
        ctx = KVLayerContext(module.layer_idx, layer, module, hidden, kwargs["position_embeddings"],
                             self.request, phase, self.score_backend)
        with self._timed(), torch.no_grad():
            if phase == "prefill":
                self.policy.on_prefill(ctx)
            else:
                self.policy.on_decode(ctx)
        return None

    def _on_lm_post(self, module, args, kwargs, output):
        cache = self.cache
        if cache is None or self.request is None or self._phase() != "prefill":
            return None
        layers = [l for l in cache.layers if isinstance(l, EvictableLayer)]
        if not layers:
            return None
        with self._timed(), torch.no_grad():
            self.policy.end_prefill(layers, self.request)
            for layer in layers:
                if isinstance(layer, QuantizedEvictableLayer):
                    layer.flush()
        self._check_evicted(layers)
        return None

    def _check_evicted(self, layers: list[EvictableLayer]) -> None:
        """A budget below the prompt length that evicted nothing is a bug, never a result to report."""
        capacity = getattr(self.policy, "capacity", None)
        if capacity is None or self.policy.decode_time:
            return
        if capacity() < self.request.prompt_len and not any(l.evicted for l in layers):
            raise RuntimeError(f"{type(self.policy).__name__}: the budget keeps {capacity()} of "
                               f"{self.request.prompt_len} prompt entries but no layer evicted anything; "
                               "the cache hooks did not run (unsupported model or transformers version?)")

"""Executable LVLM efficient-inference methods (visual-token compression, and KV/decoding methods).

Importing this package does NOT import torch; submodules that need torch import it themselves.

How a method plugs in
---------------------
1. Write one module ``lvlm_atlas/methods/algorithms/mymethod.py`` with one ``@dataclass`` subclass of
   ``lvlm_atlas.methods.base.Method``. Its dataclass fields are its parameters (the official code's
   defaults as defaults). Set the class attributes ``stage`` (a ``Stage``) and ``needs`` (signals it
   uses, e.g. ``{"vision_attention"}``), and register it -- the only place its name is written in
   code -- with ``@register("mymethod")`` from ``lvlm_atlas.methods.registry``.
2. Implement the hook that matches the stage:
   * ``vision`` / ``pre_llm``: ``select(ctx: PrefillContext) -> Selection`` -- choose which visual
     tokens survive (indices into the request's visual tokens) and optionally new embeddings for them.
     The framework physically removes the others before the first decoder layer and keeps the
     survivors' original position ids (1-D RoPE or Qwen2-VL 3-D M-RoPE).
   * ``in_llm``: ``prune_layers(num_layers) -> list[int]`` and ``select_in_llm(ctx: LayerContext)
     -> Selection``; ``ctx.received(rows)`` / ``ctx.mass_to(rows, cols)`` score with the previous
     layer's attention, recomputed for just the query rows you need from its q/k projections and
     rotary embedding by the attention-score kernel (Triton on CUDA; the model stays on SDPA /
     flash-attn); ``ctx.attention(rows)`` gives the probability rows themselves. Subclass
     ``methods.base.AttentionGuidedMethod`` to get the ``score_backend`` parameter.
     Two optional method attributes (usually dataclass fields) change what the session does:
     ``score_layer = "own"`` scores with the pruning layer's own attention (from its input, after
     its input norm) instead of the previous layer's; ``renumber_positions = True`` renumbers the
     surviving rows 0..n-1 after each drop (1-D RoPE models) and continues decoding per layer from
     its own count of cached tokens. With renumbering, ``Selection.after`` marks kept tokens (e.g.
     merged cluster tokens hosted in dropped rows) that take the sequence ranks after the other kept
     visual tokens, as official code that appends new tokens does.
   * ``kv``: subclass ``lvlm_atlas.methods.kv.method.KVMethod`` (a KV policy), or override ``install(session)`` and register hooks through
     ``session.add_forward_hook`` / ``session.add_forward_pre_hook`` (removed automatically when
     the context exits, also on exceptions); ``session.adapter`` exposes the decoder layers,
     attention modules, vision tower, projector and image-token id of any supported model.
3. Use it: ``with method.apply(model) as session: model.generate(**inputs)``; after a request
   ``session.last`` holds the TokenLayout and selections (visual tokens before/after, overhead).
4. Add a method card ``lvlm_atlas/methods/cards/<name>.yaml`` (format: docs/method-format.md).
"""
from __future__ import annotations

from lvlm_atlas.methods.registry import create, get, load_card, load_cards, names, register
from lvlm_atlas.methods.stages import Stage

__all__ = ["Stage", "create", "get", "load_card", "load_cards", "names", "register"]

"""Session: the hooks that attach one Method to one model, and the per-request state they share.

Hook points (all public module boundaries, registered with `register_forward_pre_hook(with_kwargs=True)`):
  * the multimodal base model (e.g. LlavaModel): sees input_ids -> builds the request's TokenLayout;
  * the decoder stack (language_model): for `vision`/`pre_llm` methods, physically removes visual rows
    from inputs_embeds and slices position ids / attention mask (kept tokens keep their original
    positions, 1-D or 3-D M-RoPE); during decoding it re-indexes the 2-D mask and continues positions;
  * decoder layers >= the first pruning layer (for `in_llm` methods): prune at the input of the chosen
    layers and slice the per-layer rotary cos/sin, position ids and masks to the surviving rows;
    with `renumber_positions` (a method attribute) the surviving rows are renumbered 0..n-1 after each
    drop, as the official PyramidDrop / SparseVLM code does (1-D RoPE models; Qwen2-VL's 3-D M-RoPE
    positions are kept), and decoding continues from each layer's own count of cached tokens;
  * the previous layer's self-attention (capture only) so that attention rows can be recomputed
    (`score_layer = "previous"`, the default); with `score_layer = "own"` a pruning layer ranks with its
    own attention, recomputed from its input (after its input norm) before the rows are dropped.
Every handle is removed in `close()`, which `Method.apply` calls in a `finally` block.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from lvlm_atlas.methods.transformers_adapter import ModelAdapter, check_cache_argument, past_length
from lvlm_atlas.methods.contexts import LayerContext, PrefillContext, Selection
from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.layout import TokenLayout
from lvlm_atlas.methods.signals import llm_attention_mass, llm_attention_received, llm_attention_rows
from lvlm_atlas.methods.stages import Stage


@dataclass
class RequestStats:
    visual_before: int = 0
    visual_after: int = 0
    # host time inside the method's own code (selection, scoring); never synchronises the device. On CPU it
    # is the method's cost; on CUDA it is launch time only: `atlas bench --profile` measures device time.
    method_overhead_s: float = 0.0
    kept: dict[str, torch.Tensor] = field(default_factory=dict)   # stage/layer -> kept original positions
    visual_per_layer: dict[int, int] = field(default_factory=dict)


@dataclass
class _Request:
    """One request as the session tracks it: the only place prefill vs decode is decided (token and KV
    methods alike read `phase`, `prompt_len` and `is_visual` from here)."""
    layout: TokenLayout | None
    stats: RequestStats
    mm_kwargs: dict
    prompt_len: int = 0
    is_visual: torch.Tensor | None = None   # (B, prompt_len) bool: which prompt positions are image tokens
    phase: str = "prefill"
    lm_len: int = 0                         # sequence length at the decoder input before pruning
    pre_keep: torch.Tensor | None = None    # kept positions (pre-LLM pruning)
    pre_replace: tuple[torch.Tensor, torch.Tensor] | None = None
    next_pos: torch.Tensor | None = None
    cur_index: torch.Tensor | None = None   # in-LLM: original rows currently present
    cur_key: torch.Tensor | None = None     # in-LLM, renumbered: sequence order key of each present row
    layer_key: dict[int, torch.Tensor] = field(default_factory=dict)
    layer_rows: dict[int, torch.Tensor] = field(default_factory=dict)
    layer_keep: dict[int, torch.Tensor] = field(default_factory=dict)
    layer_replace: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    attn_inputs: dict[int, tuple[torch.Tensor, Any]] = field(default_factory=dict)
    lm_embeds: torch.Tensor | None = None   # in-LLM: the decoder input (all rows) of this prefill
    decode_pos: torch.Tensor | None = None  # in-LLM decode: original positions of the new rows


def shorten_prefill(kwargs: dict, keep_seq: torch.Tensor) -> torch.Tensor:
    """Keep only the rows `keep_seq` of a prefill's decoder input (inputs_embeds, position ids, 2-D mask); the
    survivors keep their positions (1-D or 3-D M-RoPE). Returns the position the first decode step takes."""
    embeds = kwargs["inputs_embeds"]
    dev = embeds.device
    kwargs["inputs_embeds"] = embeds[:, keep_seq]
    pos = kwargs.get("position_ids")
    if pos is None:
        pos = torch.arange(embeds.shape[1], device=dev)[keep_seq].unsqueeze(0)
    else:
        pos = pos[..., keep_seq]
    kwargs["position_ids"] = pos
    am = kwargs.get("attention_mask")
    if am is None:
        kwargs["attention_mask"] = torch.ones(1, keep_seq.numel(), dtype=torch.long, device=dev)
    elif torch.is_tensor(am) and am.dim() == 2:
        kwargs["attention_mask"] = am[:, keep_seq]
    else:
        raise NotImplementedError("pre-LLM pruning needs a 2-D attention_mask (or none); got a prepared mask")
    return pos.amax(dim=-1) + 1


def continue_decode(kwargs: dict, keep_seq: torch.Tensor, lm_len: int, next_pos: torch.Tensor) -> torch.Tensor:
    """A decode step after `shorten_prefill`: re-index its 2-D mask and continue the positions from
    `next_pos`. Returns the position of the step after it."""
    q = kwargs["inputs_embeds"].shape[1]
    dev = kwargs["inputs_embeds"].device
    am = kwargs.get("attention_mask")
    if torch.is_tensor(am) and am.dim() == 2 and am.shape[1] >= lm_len:
        kwargs["attention_mask"] = torch.cat([am[:, keep_seq], am[:, lm_len:]], dim=1)
    elif am is not None and not (torch.is_tensor(am) and am.dim() == 2):
        raise NotImplementedError("decoding after pre-LLM pruning needs a 2-D attention_mask (or none)")
    pos = next_pos.unsqueeze(-1) + torch.arange(q, device=dev)
    given = kwargs.get("position_ids")
    if given is not None and given.dim() == 3 and pos.dim() == 3 and given.shape[0] != pos.shape[0]:
        pos = pos[-given.shape[0]:]
    kwargs["position_ids"] = pos
    return next_pos + q


class Session:
    """Created by `Method.apply(model)`; `last` holds the stats of the most recent request."""

    def __init__(self, model, method: Any):  # a methods.base.Method (which imports this module, not vice versa)
        self.model = model
        self.method = method
        self.adapter = ModelAdapter.of(model)
        self._handles: list = []
        self._cleanups: list[Callable[[], None]] = []
        self._req: _Request | None = None
        self._frozen: _Request | None = None
        self.last: RequestStats | None = None
        self.generator = torch.Generator(device="cpu")
        self._prune_layers: list[int] = []
        self._score_own = False      # in_llm: rank with the pruning layer's own attention
        self._renumber = False       # in_llm: renumber positions 0..n-1 after each drop (1-D RoPE)
        self._can_reorder = False    # in_llm: Selection.after honoured (not under flash-attn)
        self.vision_capture: tuple | None = None   # latest vision-attention input (vision_signals)
        self.vision_grid = None                     # Qwen2.5-VL grid_thw (vision_signals)
        self.vision_features = None                 # LLaVA-1.5 feature-layer output (vision_signals)
        self.vision_last = None                     # LLaVA-1.5 last CLIP layer's attention input (vision_signals)
        self._request_listeners: list[Callable[[_Request], None]] = []

    # --- hook management (also for kv/cache/decode methods) -----------------------------------------
    def add_forward_pre_hook(self, module, fn: Callable, with_kwargs: bool = True):
        h = module.register_forward_pre_hook(fn, with_kwargs=with_kwargs)
        self._handles.append(h)
        return h

    def add_forward_hook(self, module, fn: Callable, with_kwargs: bool = False):
        h = module.register_forward_hook(fn, with_kwargs=with_kwargs)
        self._handles.append(h)
        return h

    def on_new_request(self, fn: Callable[["_Request"], None]) -> None:
        """Call `fn(request)` when a new request's prefill starts (e.g. the KV controller's per-request state)."""
        self._request_listeners.append(fn)

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run `fn` when the session closes (after its hooks are removed; last added runs first)."""
        self._cleanups.append(fn)

    @property
    def active_hooks(self) -> int:
        return len(self._handles)

    def open(self) -> None:
        try:
            m, a = self.method, self.adapter
            self.add_forward_pre_hook(a.mm, self._on_mm)
            self.add_forward_pre_hook(a.language_model, self._on_lm)
            if m.stage == Stage.IN_LLM:
                layers = sorted(set(m.prune_layers(a.num_layers)))
                bad = [l for l in layers if not 1 <= l < a.num_layers]
                if not layers or bad:
                    raise ValueError(f"{m.name}: pruning layers must lie in 1..{a.num_layers - 1} for this model "
                                     f"({a.num_layers} layers); got {layers}")
                self._prune_layers = layers
                score_layer = getattr(m, "score_layer", "previous")
                if score_layer not in ("previous", "own"):
                    raise ValueError(f"{m.name}: score_layer must be 'previous' or 'own', got {score_layer!r}")
                self._score_own = score_layer == "own"
                self._renumber = bool(getattr(m, "renumber_positions", False)) and not a.is_qwen
                # appended tokens need an explicit causal mask in sequence order: not with flash-attn
                self._can_reorder = a.attn_implementation != "flash_attention_2"
                for l in range(layers[0], a.num_layers):
                    self.add_forward_pre_hook(a.layers[l], self._make_layer_hook(l))
                if not self._score_own:
                    for l in layers:
                        self.add_forward_pre_hook(a.attention(l - 1), self._make_attn_capture(l - 1))
            if "vision_attention" in m.needs:
                from lvlm_atlas.methods import vision_signals

                vision_signals.install(self)
            m.install(self)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self._handles:
            self._handles.pop().remove()
        while self._cleanups:
            self._cleanups.pop()()
        self.vision_capture = None
        self.vision_grid = None
        self.vision_features = None
        self.vision_last = None
        if self._req is not None:
            self._req.attn_inputs.clear()

    def freeze(self) -> None:
        """Reuse the last request's selection (and merged vectors) for the next prefills, e.g. to recompute
        a longer sequence (prompt + generated tokens) without a cache and compare with cached decoding."""
        if self._req is None:
            raise RuntimeError("freeze() needs a completed request to freeze")
        self._frozen = self._req

    def unfreeze(self) -> None:
        self._frozen = None

    @property
    def request(self) -> _Request | None:
        return self._req

    # --- multimodal base model: new request -> layout ------------------------------------------------
    def _on_mm(self, module, args, kwargs):
        check_cache_argument(module, kwargs)
        if past_length(kwargs) > 0:
            if self._req is not None:
                self._req.phase = "decode"
            return None
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None:
            raise ValueError(f"{self.method.name}: pass input_ids (not inputs_embeds) so the visual tokens can be located")
        if input_ids.shape[0] != 1 and not self.method.supports_batch:
            raise NotImplementedError(f"{self.method.name} supports batch size 1 only (got {input_ids.shape[0]}); "
                                      "run one request at a time")
        layout = None
        is_visual = input_ids == self.adapter.image_token_id
        has_visual = bool(is_visual.any())
        if not has_visual and kwargs.get("pixel_values") is not None:
            raise ValueError(f"{self.method.name}: the request carries pixel_values but its input_ids hold no image "
                             f"token (id {self.adapter.image_token_id}); build the prompt with the model's processor "
                             "so each image is expanded into its image tokens")
        # TokenLayout describes one request; batch-capable (kv) methods run without it
        if input_ids.shape[0] == 1 and has_visual:
            layout = self.adapter.layout(input_ids, kwargs)
        stats = RequestStats(visual_before=layout.n_visual if layout else 0,
                             visual_after=layout.n_visual if layout else 0)
        mm_kwargs = {k: kwargs.get(k) for k in ("image_sizes", "image_grid_thw") if kwargs.get(k) is not None}
        self._req = _Request(layout=layout, stats=stats, mm_kwargs=mm_kwargs, prompt_len=int(input_ids.shape[1]),
                             is_visual=is_visual if has_visual else None)
        self.last = stats
        for listener in self._request_listeners:
            listener(self._req)
        return None

    # --- decoder stack entry: pre-LLM pruning and decode re-indexing ---------------------------------
    def _on_lm(self, module, args, kwargs):
        req = self._req
        if req is None or req.layout is None or req.layout.n_visual == 0:
            return None
        if past_length(kwargs) == 0:
            req.phase = "prefill"
            embeds = kwargs.get("inputs_embeds")
            if embeds is None:
                raise ValueError("expected inputs_embeds at the decoder input (multimodal models merge them)")
            req.lm_len = int(embeds.shape[1])
            req.cur_index = None
            if self.method.stage == Stage.IN_LLM:
                req.lm_embeds = embeds
            if self.method.stage.prunes_before_llm:
                return args, self._prune_prefill(req, kwargs)
            return None
        req.phase = "decode"
        if req.pre_keep is not None:
            return args, self._reindex_decode(req, kwargs)
        if self._renumber:
            past = past_length(kwargs)
            q = kwargs["inputs_embeds"].shape[1] if kwargs.get("inputs_embeds") is not None else 1
            req.decode_pos = torch.arange(past, past + q, device=self._device(kwargs))
        return None

    def _prune_prefill(self, req: _Request, kwargs: dict):
        embeds = kwargs["inputs_embeds"]
        L = embeds.shape[1]
        layout = req.layout
        frozen = self._frozen
        dev = embeds.device
        if frozen is not None and frozen.pre_keep is not None:
            if L < frozen.lm_len:
                raise ValueError("a frozen selection can only be replayed on a sequence that extends the original")
            keep_seq = torch.cat([frozen.pre_keep, torch.arange(frozen.lm_len, L, device=dev)])
            replace = frozen.pre_replace
            n_kept = frozen.stats.visual_after
        else:
            n = layout.n_visual
            adaptive = self.method.budget is None and getattr(self.method, "adaptive", False)
            k = n if adaptive else resolve_budget(self.method.budget, n)
            if k >= n and not adaptive:
                return kwargs  # no-op budget: the model runs untouched
            ctx = PrefillContext(layout=layout, inputs_embeds=embeds, keep=k, generator=self._seeded(),
                                 vision=self._vision_signals(req), family=self.adapter.family,
                                 project=self.adapter.projector)
            t0 = time.perf_counter()
            with torch.profiler.record_function("atlas.method"):   # attributed by `atlas bench --profile`
                sel = self.method.select(ctx)
            keep = self._check(sel, n, k, exact=not adaptive).to(dev)
            k = keep.numel()
            order = torch.argsort(keep)
            keep_vis = keep[order]
            pos_vis = layout.visual_index.to(dev)[keep_vis]
            replace = None
            if sel.embeds is not None:
                replace = (pos_vis, sel.embeds[order].to(embeds.dtype))
            keep_seq = torch.sort(torch.cat([layout.text_index.to(dev), pos_vis])).values
            req.stats.method_overhead_s += time.perf_counter() - t0
            n_kept = k
        if replace is not None:
            embeds = embeds.clone()
            embeds[0, replace[0]] = replace[1]
        kwargs["inputs_embeds"] = embeds
        req.next_pos = shorten_prefill(kwargs, keep_seq)
        req.pre_keep, req.pre_replace, req.lm_len = keep_seq, replace, L
        req.stats.visual_after = n_kept
        req.stats.kept["pre_llm"] = keep_seq[layout.is_visual.to(dev)[keep_seq]]
        return kwargs

    def _reindex_decode(self, req: _Request, kwargs: dict):
        req.next_pos = continue_decode(kwargs, req.pre_keep, req.lm_len, req.next_pos)
        return kwargs

    # --- in-LLM pruning -------------------------------------------------------------------------------
    def _make_attn_capture(self, layer: int):
        def hook(module, args, kwargs):
            req = self._req
            if req is not None and req.layout is not None and req.phase == "prefill":
                hidden = kwargs.get("hidden_states", args[0] if args else None)
                req.attn_inputs[layer] = (hidden, kwargs.get("position_embeddings"))
            return None

        return hook

    def _make_layer_hook(self, layer: int):
        def hook(module, args, kwargs):
            req = self._req
            if req is None or req.layout is None or req.layout.n_visual == 0:
                return None
            if req.phase == "prefill":
                return self._layer_prefill(layer, req, args, kwargs)
            return self._layer_decode(layer, req, args, kwargs)

        return hook

    def _layer_prefill(self, layer: int, req: _Request, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        dev = hidden.device
        T = req.lm_len
        if req.cur_index is None:
            req.cur_index = torch.arange(hidden.shape[1], device=dev)
            req.cur_key = req.cur_index.double()
        if layer in self._prune_layers:
            pe_now = self._rows_pe(kwargs.get("position_embeddings"), req)
            hidden = self._prune_at_layer(layer, req, hidden, pe_now)
            req.attn_inputs.pop(layer - 1, None)
        cur = req.cur_index
        req.layer_rows[layer] = cur
        if args:
            args = (hidden,) + tuple(args[1:])
        else:
            kwargs["hidden_states"] = hidden
        if cur.numel() == T:
            return args, kwargs
        pe = kwargs.get("position_embeddings")
        if pe is not None:
            kwargs["position_embeddings"] = self._rows_pe(pe, req)
        pid = kwargs.get("position_ids")
        if torch.is_tensor(pid):
            kwargs["position_ids"] = pid[..., self._pos_rows(req)]
        rows = self._pos_rows(req)
        am = kwargs.get("attention_mask")
        if am is None and self._renumber and not bool((rows[1:] > rows[:-1]).all()):
            # the rows are not in sequence order (tokens appended after the kept visual block): an
            # explicit causal mask over the sequence order (SDPA takes boolean masks)
            am = (rows[None, :] <= rows[:, None])[None, None]
            kwargs["attention_mask"] = am
        else:
            kwargs["attention_mask"] = self._slice_mask(am, rows, rows)
        return args, kwargs

    def _pos_rows(self, req: _Request) -> torch.Tensor:
        """Rows of the full-length rotary tables / position ids / causal mask that the current rows use:
        their own (original positions), or, when positions are renumbered after each drop, their rank
        in the sequence order (0..n-1; the prefill's positions are 0..T-1 on 1-D RoPE models, so row i
        of the tables is position i). The rank is the row order unless a method appended tokens after
        the kept visual block (`Selection.after`)."""
        cur = req.cur_index
        if not self._renumber:
            return cur
        return torch.argsort(torch.argsort(req.cur_key))

    def _rows_pe(self, pe, req: _Request):
        if pe is None:
            return None
        rows = self._pos_rows(req)
        return tuple(x[..., rows, :] for x in pe)

    @staticmethod
    def _device(kwargs: dict) -> torch.device:
        e = kwargs.get("inputs_embeds")
        return e.device if e is not None else torch.device("cpu")

    def _prune_at_layer(self, layer: int, req: _Request, hidden: torch.Tensor, pe_now=None) -> torch.Tensor:
        dev = hidden.device
        cur = req.cur_index
        is_vis = req.layout.is_visual.to(dev)
        frozen = self._frozen
        if frozen is not None and layer in frozen.layer_keep:
            orig = frozen.layer_keep[layer]
            ext = torch.arange(frozen.lm_len, req.lm_len, device=dev)
            new_cur = torch.cat([orig, ext])
            rows = torch.searchsorted(cur, new_cur)
            rep = frozen.layer_replace.get(layer)
            if rep is not None:
                hidden = hidden.clone()
                hidden[0, torch.searchsorted(cur, rep[0])] = rep[1]
            req.cur_index = new_cur
            if layer in frozen.layer_key:
                req.cur_key = torch.cat([frozen.layer_key[layer], ext.double()])
            else:
                req.cur_key = new_cur.double()
            return hidden[:, rows]
        visual_rows = is_vis[cur].nonzero().squeeze(1)
        stage_index = self._prune_layers.index(layer)
        k = self.method.keep_at(stage_index, visual_rows.numel(), req.layout.n_visual)
        k = min(k, visual_rows.numel())
        if k >= visual_rows.numel():
            req.stats.visual_per_layer[layer] = int(visual_rows.numel())
            return hidden
        if self._score_own:
            # this layer's own attention over the rows present now (PyramidDrop's official rule)
            attn_mod = self.adapter.attention(layer)
            cap = (self.adapter.layers[layer].input_layernorm(hidden), pe_now)
        else:
            cap = req.attn_inputs.get(layer - 1)
            attn_mod = self.adapter.attention(layer - 1)

        backend = getattr(self.method, "score_backend", "auto")

        def captured():
            if cap is None:
                raise RuntimeError(f"no captured input for layer {layer - 1} attention")
            return cap

        def attention(rows: torch.Tensor) -> torch.Tensor:
            return llm_attention_rows(attn_mod, *captured(), rows.to(dev))[0]

        def received(rows: torch.Tensor) -> torch.Tensor:
            return llm_attention_received(attn_mod, *captured(), rows.to(dev), backend=backend)[0]

        def mass_to(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            return llm_attention_mass(attn_mod, *captured(), rows.to(dev), cols.to(dev), backend=backend)[0]

        ctx = LayerContext(layer=layer, hidden=hidden, visual_rows=visual_rows, keep=k, layout=req.layout,
                           attention=attention, generator=self._seeded(), stage_index=stage_index,
                           received=received, mass_to=mass_to, rows=cur, inputs_embeds=req.lm_embeds)
        t0 = time.perf_counter()
        with torch.profiler.record_function("atlas.method"):
            sel = self.method.select_in_llm(ctx)
        keep = self._check(sel, visual_rows.numel(), k).to(dev)
        order = torch.argsort(keep)
        keep_rows_vis = visual_rows[keep[order]]
        if sel.embeds is not None:
            hidden = hidden.clone()
            hidden[0, keep_rows_vis] = sel.embeds[order].to(hidden.dtype)
            req.layer_replace[layer] = (cur[keep_rows_vis], sel.embeds[order].to(hidden.dtype))
        nonvis_rows = (~is_vis[cur]).nonzero().squeeze(1)
        rows = torch.sort(torch.cat([nonvis_rows, keep_rows_vis])).values
        key = req.cur_key[rows].clone()
        if sel.after is not None and self._renumber and self._can_reorder and sel.after.numel():
            # tokens the official code appends after the kept visual tokens: they take the sequence
            # ranks right after the other kept visual tokens (their rows only host them)
            after_rows = visual_rows[keep[sel.after.to(keep.device)]]
            pos_in = torch.searchsorted(rows, after_rows)
            hosted = torch.zeros(rows.numel(), dtype=torch.bool, device=dev)
            hosted[pos_in] = True
            vis_kept = is_vis[cur[rows]] & ~hosted
            top = key[vis_kept].max() if bool(vis_kept.any()) else key[pos_in].min() - 1
            higher = key[(key > top) & ~hosted]
            nxt = higher.min() if higher.numel() else top + 1
            m = after_rows.numel()
            key[pos_in] = top + (nxt - top) * torch.arange(1, m + 1, device=dev, dtype=key.dtype) / (m + 1)
        req.cur_key = key
        req.layer_key[layer] = key
        req.stats.method_overhead_s += time.perf_counter() - t0
        req.cur_index = cur[rows]
        req.layer_keep[layer] = req.cur_index
        req.stats.visual_per_layer[layer] = k
        req.stats.visual_after = k
        req.stats.kept[f"layer{layer}"] = req.cur_index[is_vis[req.cur_index]]
        return hidden[:, rows]

    def _layer_decode(self, layer: int, req: _Request, args, kwargs):
        rows = req.layer_rows.get(layer)
        if rows is None or rows.numel() == req.lm_len:
            return None
        if self._renumber and req.decode_pos is not None:
            # this layer caches rows.numel() prompt rows: the new rows continue from there
            hidden = args[0] if args else kwargs["hidden_states"]
            pos = (req.decode_pos - (req.lm_len - rows.numel())).unsqueeze(0)
            kwargs["position_embeddings"] = self.adapter.language_model.rotary_emb(hidden, pos)
            if torch.is_tensor(kwargs.get("position_ids")):
                kwargs["position_ids"] = pos
        am = kwargs.get("attention_mask")
        if am is None:
            return args, kwargs
        kv = am.shape[-1]
        cols = torch.cat([rows, torch.arange(req.lm_len, kv, device=rows.device)])
        kwargs["attention_mask"] = self._slice_mask(am, None, cols)
        return args, kwargs

    @staticmethod
    def _slice_mask(am, rows: torch.Tensor | None, cols: torch.Tensor):
        if am is None:
            return None
        if not torch.is_tensor(am):
            raise NotImplementedError(f"cannot re-index an attention mask of type {type(am).__name__}")
        if am.dim() == 4:
            if rows is not None:
                am = am[:, :, rows]
            return am[..., cols]
        if am.dim() == 2:
            return am[:, cols]
        raise NotImplementedError(f"cannot re-index an attention mask of shape {tuple(am.shape)}")

    # --- helpers --------------------------------------------------------------------------------------
    def _seeded(self) -> torch.Generator:
        return self.generator.manual_seed(int(self.method.seed))

    def _vision_signals(self, req: _Request) -> dict:
        if "vision_attention" not in self.method.needs:
            return {}
        from lvlm_atlas.methods import vision_signals

        return vision_signals.compute(self, req)

    def _check(self, sel: Selection, n: int, k: int, exact: bool = True) -> torch.Tensor:
        keep = torch.as_tensor(sel.keep).long().flatten()
        if (keep.numel() != k) if exact else not 1 <= keep.numel() <= n:
            raise RuntimeError(f"{self.method.name} kept {keep.numel()} visual tokens, budget is {k}")
        if keep.numel() and (int(keep.min()) < 0 or int(keep.max()) >= n):
            raise RuntimeError(f"{self.method.name} returned indices outside 0..{n - 1}")
        if torch.unique(keep).numel() != keep.numel():
            raise RuntimeError(f"{self.method.name} returned duplicate indices")
        if sel.embeds is not None and sel.embeds.shape[0] != keep.numel():
            raise RuntimeError(f"{self.method.name} returned {sel.embeds.shape[0]} merged vectors for {k} tokens")
        return keep

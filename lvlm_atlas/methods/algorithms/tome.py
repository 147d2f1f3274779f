"""ToMe (Token Merging, Bolya et al., ICLR 2023) inside LLaVA's CLIP vision tower and the Qwen2-VL /
Qwen2.5-VL ViT (the latter in units of its 2x2 patch groups, within windows on 2.5: see `QwenTowerMerging`).

In every vision block, between the attention and the MLP, `r` tokens are merged by bipartite soft
matching on the attention keys (heads averaged): the tokens are split alternately into sets A and B, each
A token's most similar B token (cosine) is its edge, the `r` strongest edges are merged (A token into its
B partner, size-weighted average), the CLS token is never merged. Token sizes (how many patches a token
stands for) are carried along and added as log(size) to the attention logits (proportional attention).
Later blocks therefore run on fewer tokens.

The LLM input: transformers scatters exactly one feature per image-token position, so the tower's
hidden states are unmerged at its output (every patch gets its group's feature), and the pre-LLM step
(`select`) keeps one representative per group (its first patch in raster order, with that patch's
position id): the LLM receives the merged token count.

Hook placement (module boundaries only): the block's `layer_norm2` input is merged, the MLP output is
unmerged back to the block's residual shape, and the block output is merged again with the same weights;
size-weighted averaging of (x_i + mlp(x'_g)) over a group is exactly x'_g + mlp(x'_g), i.e. the
official block, with the MLP run on the merged tokens.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from lvlm_atlas.methods.base import Method, PrefillContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage


def bipartite_merge_map(metric: torch.Tensor, r: int, class_token: bool = True,
                        window: torch.Tensor | None = None) -> tuple[torch.Tensor, int, int]:
    """ToMe's bipartite soft matching as a map: (dest (B, N) output index of every token, N_out, r used).

    Output order follows the official merge: the unmerged A tokens (sorted by index when there is a class
    token), then all B tokens in order. With `window` ((N,) window id of every token, batch 1) a token only
    matches tokens of its own window and r is capped at the A tokens that have a partner (one host read).
    """
    b, n, _ = metric.shape
    protected = 1 if class_token else 0
    r = min(int(r), (n - protected) // 2)
    dev = metric.device
    if r <= 0:
        return torch.arange(n, device=dev).expand(b, n), n, 0
    m = metric / metric.norm(dim=-1, keepdim=True)
    a, bb = m[..., ::2, :], m[..., 1::2, :]
    scores = a @ bb.transpose(-1, -2)
    if class_token:
        scores[..., 0, :] = -math.inf
    if window is not None:
        scores = scores.masked_fill(window[::2, None] != window[None, 1::2], -math.inf)
    node_max, node_idx = scores.max(dim=-1)                      # (B, Na)
    if window is not None:
        r = min(r, int(torch.isfinite(node_max).sum(-1).min()))
        if r <= 0:
            return torch.arange(n, device=dev).expand(b, n), n, 0
    edge_idx = node_max.argsort(dim=-1, descending=True)          # (B, Na)
    unm_idx = edge_idx[..., r:]
    src_idx = edge_idx[..., :r]
    if class_token:
        unm_idx = unm_idx.sort(dim=-1).values
    na, nb = a.shape[1], bb.shape[1]
    n_unm = na - r
    dest_a = torch.empty(b, na, dtype=torch.long, device=dev)
    dest_a.scatter_(1, unm_idx, torch.arange(n_unm, device=dev).expand(b, n_unm))
    dest_a.scatter_(1, src_idx, n_unm + node_idx.gather(1, src_idx))
    dest = torch.empty(b, n, dtype=torch.long, device=dev)
    dest[:, ::2] = dest_a
    dest[:, 1::2] = n_unm + torch.arange(nb, device=dev)
    return dest, n_unm + nb, r


def merge_wavg(x: torch.Tensor, size: torch.Tensor, dest: torch.Tensor, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average of the tokens of each group: (B, N, C) -> (B, n_out, C), and the summed sizes."""
    b, n, c = x.shape
    xs = torch.zeros(b, n_out, c, dtype=torch.float32, device=x.device)
    xs.scatter_add_(1, dest.unsqueeze(-1).expand(b, n, c), (x.float() * size.float()))
    ss = torch.zeros(b, n_out, 1, dtype=torch.float32, device=x.device)
    ss.scatter_add_(1, dest.unsqueeze(-1), size.float())
    return (xs / ss).to(x.dtype), ss.to(size.dtype)


def unmerge(x: torch.Tensor, dest: torch.Tensor) -> torch.Tensor:
    """Every token of the pre-merge sequence gets its group's vector: (B, n_out, C) -> (B, N, C)."""
    return x.gather(1, dest.unsqueeze(-1).expand(*dest.shape, x.shape[-1]))


def block_flops(n_in: int, r: int, hidden: int, inter: int, mlp_matrices: int = 2) -> float:
    """One ViT block (multiply-add = 2 FLOPs): q/k/v/out projections and attention on n_in tokens, MLP on
    n_in - r (`mlp_matrices` hidden x inter matrices: 2, or 3 for a gated MLP). Attention is counted as
    full attention over n_in tokens (an upper bound for windowed blocks)."""
    return (2.0 * n_in * 4 * hidden * hidden + 4.0 * hidden * n_in * n_in
            + 2.0 * (n_in - r) * mlp_matrices * hidden * inter)


def hook_tower(session, owner, tower, blocks) -> None:
    """ToMe's hook placement. `blocks`: (block, module whose output holds the keys, the norm before the MLP,
    the MLP) per block; `owner` provides the hook functions."""
    session.add_forward_pre_hook(tower, owner._tower_start)
    session.add_forward_hook(tower, owner._tower_end, with_kwargs=True)
    for block, keys, norm2, mlp in blocks:
        session.add_forward_pre_hook(block, owner._block_start)
        session.add_forward_hook(keys, owner._keys)
        session.add_forward_pre_hook(norm2, owner._merge_mid, with_kwargs=False)
        session.add_forward_hook(mlp, owner._unmerge_mlp)
        # prepended: transformers records hidden states with its own forward hooks; they must see the merged output
        session.add_cleanup(block.register_forward_hook(owner._merge_out, prepend=True).remove)


@dataclass
class _TowerState:
    size: torch.Tensor | None = None
    groups: torch.Tensor | None = None         # (B, N0): current index of every original token
    dest: torch.Tensor | None = None
    n_out: int = 0
    old_size: torch.Tensor | None = None
    metric: torch.Tensor | None = None
    maps: list = field(default_factory=list)   # per block output: groups (B, N0)
    tokens_in: list = field(default_factory=list)
    merged: list = field(default_factory=list)
    t0: float = 0.0


@register("tome")
@dataclass
class ToMe(Method):
    r: int = 8                   # tokens merged per vision block (capped at half the mergeable tokens)
    prop_attn: bool = True       # proportional attention: log(size) added to the attention logits

    stage: ClassVar[Stage] = Stage.VISION
    budget_driven: ClassVar[bool] = False   # the kept count follows from its own parameters
    needs: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self):
        self._qwen = None
        if self.budget is not None:
            raise ValueError("tome is set by r (tokens merged per vision block); the visual-token count follows "
                             "from it, so leave budget unset (atlas bench: --budgets none)")
        if int(self.r) < 0:
            raise ValueError(f"r must be >= 0, got {self.r}")
        self._state = _TowerState()
        self._keep: torch.Tensor | None = None
        self.report: dict = {}

    # --- hooks ------------------------------------------------------------------------------------------
    def install(self, session) -> None:
        from lvlm_atlas.methods.transformers_adapter import vision_encoder_layers, vision_feature_layer

        adapter = session.adapter
        if adapter.family in ("qwen2_vl", "qwen2_5_vl"):
            self._qwen = QwenTowerMerging(self, session)
            self._qwen.install()
            session.add_cleanup(self._reset_budget)
            return
        if adapter.family != "llava":
            raise NotImplementedError(f"tome is implemented for LLaVA's CLIP tower and the Qwen2-VL family's ViT "
                                      f"(got {adapter.family})")
        self._feature_layer = vision_feature_layer(adapter)
        layers = vision_encoder_layers(adapter)
        self._n_layers = len(layers)
        cfg = adapter.model.config.vision_config
        self._dims = (int(cfg.hidden_size), int(cfg.intermediate_size), int(cfg.num_attention_heads))
        hook_tower(session, self, adapter.vision_tower,
                   [(layer, layer.self_attn.k_proj, layer.layer_norm2, layer.mlp) for layer in layers])
        session.add_cleanup(self._reset_budget)

    def _reset_budget(self) -> None:
        self.budget = None

    def _tower_start(self, module, args, kwargs):
        self._state = _TowerState()
        self.budget = None
        self._state.t0 = time.perf_counter()
        return None

    def _block_start(self, module, args, kwargs):
        st = self._state
        hidden = args[0] if args else kwargs["hidden_states"]
        st.tokens_in.append(int(hidden.shape[1]))
        if st.groups is None:
            st.groups = torch.arange(hidden.shape[1], device=hidden.device).expand(hidden.shape[0], -1)
        if self.prop_attn and st.size is not None:
            bias = st.size.log()[:, None, None, :, 0].to(hidden.dtype)      # (B, 1, 1, N)
            if len(args) > 1:
                args = (args[0], bias) + tuple(args[2:])
            else:
                kwargs["attention_mask"] = bias
            return args, kwargs
        return None

    def _keys(self, module, args, output):
        b, n, c = output.shape
        heads = self._dims[2]
        self._state.metric = output.view(b, n, heads, c // heads).mean(2)      # keys averaged over heads
        return None

    def _merge_mid(self, module, args):
        st = self._state
        x = args[0]
        st.dest = None
        if self.r <= 0:
            return None
        dest, n_out, r = bipartite_merge_map(st.metric, self.r, class_token=True)
        st.merged.append(r)
        if r == 0:
            return None
        size = st.size if st.size is not None else torch.ones_like(x[..., :1])
        st.dest, st.n_out, st.old_size = dest, n_out, size
        merged, st.size = merge_wavg(x, size, dest, n_out)
        return (merged,)

    def _unmerge_mlp(self, module, args, output):
        st = self._state
        if st.dest is None:
            return None
        return unmerge(output, st.dest)

    def _merge_out(self, module, args, output):
        st = self._state
        if st.dest is None:
            if st.groups is not None:
                st.maps.append(st.groups)
                if len(st.merged) < len(st.tokens_in):
                    st.merged.append(0)
            return None
        out, _ = merge_wavg(output, st.old_size, st.dest, st.n_out)
        st.groups = st.dest.gather(1, st.groups)
        st.maps.append(st.groups)
        st.dest = None
        return out

    def _tower_end(self, module, args, kwargs, output):
        st = self._state
        hs = getattr(output, "hidden_states", None)
        if hs is not None:
            fixed = []
            for i, h in enumerate(hs):
                if h is not None and i >= 1 and h.shape[1] != st.maps[i - 1].shape[1]:
                    h = unmerge(h, st.maps[i - 1])
                fixed.append(h)
            output.hidden_states = tuple(fixed)
        if st.maps and output.last_hidden_state.shape[1] != st.maps[-1].shape[1]:
            output.last_hidden_state = unmerge(output.last_hidden_state, st.maps[-1])
        if output.last_hidden_state.device.type == "cuda":
            torch.cuda.synchronize(output.last_hidden_state.device)
        enc_s = time.perf_counter() - st.t0
        # groups at the layer whose features feed the projector (index into embeddings + block outputs)
        n_hidden = self._n_layers + 1
        idx = self._feature_layer % n_hidden
        groups = st.maps[idx - 1] if idx >= 1 and st.maps else None
        keep = []
        n0 = st.tokens_in[0] if st.tokens_in else 0
        if groups is not None:
            for b in range(groups.shape[0]):
                g = groups[b, 1:]                                            # patches (CLS dropped)
                first = torch.full((int(g.max()) + 1,), g.numel(), dtype=torch.long, device=g.device)
                first.scatter_reduce_(0, g, torch.arange(g.numel(), device=g.device), reduce="amin")
                reps = first[first < g.numel()]
                keep.append(torch.sort(reps).values + b * (n0 - 1))
        self._keep = torch.cat(keep) if keep else None
        n_patches = groups.shape[0] * (n0 - 1) if groups is not None else 0
        if self._keep is not None and self._keep.numel() < n_patches:
            self.budget = int(self._keep.numel())
        hidden, inter, _ = self._dims
        merged = st.merged + [0] * (len(st.tokens_in) - len(st.merged))
        flops = sum(block_flops(n, r, hidden, inter) for n, r in zip(st.tokens_in, merged))
        base = len(st.tokens_in) * block_flops(n0, 0, hidden, inter)
        self.report = {"encoder_ms": enc_s * 1000, "encoder_flops": flops, "encoder_flops_baseline": base,
                       "encoder_flops_saved": (1 - flops / base) if base else 0.0,
                       "tokens_per_block": list(st.tokens_in), "merged_per_block": merged,
                       "visual_tokens_to_llm": int(self._keep.numel()) if self._keep is not None else None}
        return output

    # --- pre-LLM: one representative per group ---------------------------------------------------------
    def select(self, ctx: PrefillContext) -> Selection:
        if self._qwen is not None:
            self._keep = self._qwen.keep
        if self._keep is None or self._keep.numel() != ctx.keep:
            raise RuntimeError("tome: the vision tower did not run through the ToMe hooks for this request")
        return Selection(keep=self._keep.to(ctx.inputs_embeds.device))


# --------------------------------------------------------------------------- Qwen2-VL's ViT
ATTN_PREFIX = "lvlm_atlas_tome_"


def proportional_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """An ``AttentionInterface`` function: the tower's own implementation (sdpa / eager, from the name it is
    registered under) with ToMe's log(size) added to the logits when the call carries ``tome_log_size``."""
    from lvlm_atlas.methods.transformers_adapter import ALL_ATTENTION_FUNCTIONS, eager_attention_function

    log_size = kwargs.pop("tome_log_size", None)
    base = kwargs.pop("tome_base", "sdpa")
    fn = eager_attention_function(module) if base == "eager" else ALL_ATTENTION_FUNCTIONS[base]
    if log_size is not None:
        if isinstance(log_size, ChunkedLogSize):
            log_size = log_size.take(key.shape[-2])
        elif log_size.shape[-1] != key.shape[-2]:
            raise NotImplementedError(f"tome: sizes for {log_size.shape[-1]} tokens, keys for {key.shape[-2]}")
        bias = log_size.to(query.dtype).view(1, 1, 1, -1)
        attention_mask = bias if attention_mask is None else attention_mask + bias
    return fn(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


class ChunkedLogSize:
    """log(size) of every vision token of a block, handed out chunk by chunk: the vision attention calls the
    attention function once per cu_seqlens chunk (window or image), in sequence order."""

    def __init__(self, log_size: torch.Tensor):
        self.log_size = log_size
        self.offset = 0

    def take(self, n: int) -> torch.Tensor:
        part = self.log_size[self.offset:self.offset + n]
        if part.shape[-1] != n:
            raise NotImplementedError("tome: the vision attention chunks do not cover the merged sequence")
        self.offset += n
        return part


@dataclass
class _QwenState:
    unit: int = 4                              # patches per 2x2 merge group (one LLM token)
    n0: int = 0                                # merge groups of the image
    size: torch.Tensor | None = None           # (1, N, 1) original groups each current group stands for
    rep: torch.Tensor | None = None            # (N,) each current group's first original group (raster order)
    raster: torch.Tensor | None = None         # (n0,) raster group of every tower slot (window order on 2.5-VL)
    slot: torch.Tensor | None = None           # (n0,) tower slot of every raster group
    win: torch.Tensor | None = None            # (N,) window of every current group (Qwen2.5-VL)
    n_windows: int = 1
    groups: torch.Tensor | None = None         # (n0,) current index of every original group (tower slot order)
    pe0: tuple | None = None                   # the tower's rotary (cos, sin) of every original patch
    metric: torch.Tensor | None = None
    dest: torch.Tensor | None = None
    n_out: int = 0
    old_size: torch.Tensor | None = None
    tokens_in: list = field(default_factory=list)
    merged: list = field(default_factory=list)
    t0: float = 0.0


class QwenTowerMerging:
    """ToMe in the Qwen2-VL / Qwen2.5-VL ViT, in units of the 2x2 patch groups its PatchMerger turns into one LLM token.

    Each group of 4 consecutive patches (one LLM token) is one ToMe token: its metric is its 4 patches'
    keys (heads averaged, before the rotary embedding) side by side, merging averages two groups patch
    by patch (size-weighted), so the PatchMerger still sees whole groups. A merged group keeps the rotary
    position of its first original group in raster order, and the LLM gets one token per merged group at
    that group's image-token position (its M-RoPE ids). The blocks after a merge run on the shorter
    sequence (cu_seqlens and rotary tables follow); log(size) is added to the attention logits through an
    attention function registered with transformers' AttentionInterface and selected for the vision tower
    only while the method is applied.

    Qwen2.5-VL (window attention): groups only match groups of their own window, a merged group stays in
    its window, and after each merge the sequence is stably re-sorted by window so that every window stays
    contiguous; windowed blocks get the windows' new lengths as cu_seqlens, full-attention blocks one
    sequence. Capping r at the groups that have a partner in their window reads one count on the host per
    block.
    """

    def __init__(self, method: "ToMe", session):
        self.m = method
        self.session = session
        self.st = _QwenState()
        self.keep: torch.Tensor | None = None
        self.windowed = session.adapter.family == "qwen2_5_vl"

    def install(self) -> None:
        from lvlm_atlas.methods.transformers_adapter import (ALL_ATTENTION_FUNCTIONS, AttentionInterface,
                                                             qwen_vision_blocks, set_vision_attn_implementation,
                                                             vision_attn_implementation)

        s, a = self.session, self.session.adapter
        model = a.model
        vcfg = model.config.vision_config
        self.unit = int(vcfg.spatial_merge_size) ** 2
        self.heads = int(vcfg.num_heads)
        if self.windowed:
            self.dims = (int(vcfg.hidden_size), int(vcfg.intermediate_size))
        else:
            self.dims = (int(vcfg.embed_dim), int(vcfg.embed_dim * vcfg.mlp_ratio))
        blocks = qwen_vision_blocks(a)
        self.n_blocks = len(blocks)
        self.block_index = {id(blk): i for i, blk in enumerate(blocks)}
        self.full_blocks = frozenset(range(len(blocks)))
        if self.windowed:
            from lvlm_atlas.methods.transformers_adapter import qwen25_full_attention_blocks

            self.full_blocks = qwen25_full_attention_blocks(vcfg)
        base = vision_attn_implementation(model)
        if self.m.prop_attn:
            if base not in ("sdpa", "eager"):
                raise NotImplementedError(f"tome: proportional attention needs the vision tower on sdpa or eager (got {base})")
            name = ATTN_PREFIX + base
            if name not in ALL_ATTENTION_FUNCTIONS:
                AttentionInterface.register(name, proportional_attention)
            set_vision_attn_implementation(model, name)
            s.add_cleanup(lambda: set_vision_attn_implementation(model, base))
        self.base = base
        s.add_forward_pre_hook(a.mm, self._request)
        s.add_forward_hook(a.vision_tower.merger, self._unmerge_merger)
        hook_tower(s, self, a.vision_tower, [(blk, blk.attn.qkv, blk.norm2, blk.mlp) for blk in blocks])

    # --- request and tower boundaries -------------------------------------------------------------------
    def _request(self, module, args, kwargs):
        from lvlm_atlas.methods.transformers_adapter import past_length

        if past_length(kwargs) > 0:
            return None
        if kwargs.get("pixel_values_videos") is not None:
            raise NotImplementedError("tome on Qwen2-VL merges image tokens; video requests are not supported")
        grid = kwargs.get("image_grid_thw")
        if grid is not None and grid.shape[0] != 1:
            raise NotImplementedError("tome on Qwen2-VL supports one image per request")
        return None

    def _tower_start(self, module, args, kwargs):
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.st = _QwenState(unit=self.unit)
        self.keep = None
        self.m.budget = None
        if grid is None or grid.shape[0] != 1 or int(grid[0, 0]) != 1:
            raise NotImplementedError("tome on Qwen2-VL supports one image per request")
        st = self.st
        st.n0 = int(grid[0, 1]) * int(grid[0, 2]) // self.unit
        dev = grid.device
        if self.windowed:
            from lvlm_atlas.methods.transformers_adapter import qwen25_windows

            order, cu = qwen25_windows(self.session.adapter.model.config.vision_config, grid)
            counts = (cu[1:] - cu[:-1]).long().to(dev) // self.unit
            st.raster = order.to(dev)                                       # window slot -> raster group
            st.win = torch.repeat_interleave(torch.arange(counts.numel(), device=dev), counts)
            st.n_windows = int(counts.numel())
        else:
            st.raster = torch.arange(st.n0, device=dev)
        st.slot = torch.argsort(st.raster)                                  # raster group -> window slot
        st.t0 = time.perf_counter()
        return None

    def _block_start(self, module, args, kwargs):
        st = self.st
        hidden = args[0] if args else kwargs["hidden_states"]
        n = int(hidden.shape[0])
        st.tokens_in.append(n)
        if st.pe0 is None:
            st.pe0 = kwargs["position_embeddings"]
        if self.m.prop_attn:
            kwargs["tome_base"] = self.base
        if st.rep is None:
            return args, kwargs
        slots = st.slot[st.rep]
        patches = (slots[:, None] * self.unit + torch.arange(self.unit, device=slots.device)).reshape(-1)
        kwargs["position_embeddings"] = tuple(t[patches] for t in st.pe0)
        cu = kwargs.get("cu_seqlens")
        if self.block_index[id(module)] in self.full_blocks:
            lengths = torch.full((1,), n, dtype=cu.dtype, device=cu.device)
        else:
            # within-window merging never empties a window (its B groups survive)
            lengths = (torch.bincount(st.win, minlength=st.n_windows) * self.unit).to(cu.dtype)
        kwargs["cu_seqlens"] = torch.cat([lengths.new_zeros(1), lengths.cumsum(0).to(cu.dtype)])
        if "max_seqlen" in kwargs:
            kwargs["max_seqlen"] = n
        if self.m.prop_attn:
            kwargs["tome_log_size"] = ChunkedLogSize(st.size[0, :, 0].log().repeat_interleave(self.unit))
        return args, kwargs

    def _keys(self, module, args, output):
        n = output.shape[0]
        keys = output.view(n, 3, self.heads, -1)[:, 1].mean(1)              # (patches, head_dim)
        self.st.metric = keys.reshape(1, n // self.unit, -1)                  # a group's 4 keys side by side
        return None

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, x.shape[0] // self.unit, -1)

    def _merge_mid(self, module, args):
        st = self.st
        st.dest = None
        if self.m.r <= 0:
            st.merged.append(0)
            return None
        x = args[0]
        dest, n_out, r = bipartite_merge_map(st.metric, self.m.r, class_token=False,
                                             window=st.win if self.windowed else None)
        st.merged.append(r)
        if r == 0:
            return None
        xg = self._grouped(x)
        size = st.size if st.size is not None else torch.ones_like(xg[..., :1])
        rep = st.rep if st.rep is not None else st.raster
        if self.windowed:
            # keep every window's groups contiguous: the merged sequence, stably sorted by window
            win_out = torch.empty(n_out, dtype=torch.long, device=x.device)
            win_out.scatter_(0, dest[0, ::2], st.win[::2])
            win_out.scatter_(0, dest[0, 1::2], st.win[1::2])            # a merged A takes its B's window
            order = torch.argsort(win_out, stable=True)
            dest = torch.argsort(order)[dest]
            st.win = win_out[order]
        st.dest, st.n_out, st.old_size = dest, n_out, size
        merged, st.size = merge_wavg(xg, size, dest, n_out)
        st.rep = torch.full((n_out,), st.n0, dtype=torch.long, device=x.device).scatter_reduce(
            0, dest[0], rep, reduce="amin")
        return (merged.reshape(-1, x.shape[-1]),)

    def _unmerge_mlp(self, module, args, output):
        st = self.st
        if st.dest is None:
            return None
        return unmerge(self._grouped(output), st.dest).reshape(-1, output.shape[-1])

    def _merge_out(self, module, args, output):
        st = self.st
        if st.dest is None:
            return None
        out, _ = merge_wavg(self._grouped(output), st.old_size, st.dest, st.n_out)
        groups = st.groups if st.groups is not None else torch.arange(st.n0, device=output.device)
        st.groups = st.dest[0].gather(0, groups)
        st.dest = None
        return out.reshape(-1, output.shape[-1])

    def _unmerge_merger(self, module, args, output):
        """The PatchMerger ran on the merged groups: give every original group its merged group's token."""
        if self.st.groups is None:
            return None
        return output[self.st.groups]

    def _tower_end(self, module, args, kwargs, output):
        st = self.st
        hidden, inter = self.dims
        if st.groups is not None:
            last = output.last_hidden_state
            output.last_hidden_state = self._grouped(last)[0][st.groups].reshape(-1, last.shape[-1])
            self.keep = torch.sort(st.rep).values                         # raster groups = image-token order
            self.m.budget = int(self.keep.numel())
        else:
            self.keep = torch.arange(st.n0, device=output.last_hidden_state.device)
        if output.last_hidden_state.device.type == "cuda":
            torch.cuda.synchronize(output.last_hidden_state.device)
        enc_s = time.perf_counter() - st.t0
        merged = st.merged + [0] * (len(st.tokens_in) - len(st.merged))
        u = self.unit
        mats = 3 if self.windowed else 2                                # Qwen2.5-VL's vision MLP is gated
        flops = sum(block_flops(n, r * u, hidden, inter, mats) for n, r in zip(st.tokens_in, merged))
        n0 = st.tokens_in[0] if st.tokens_in else 0
        base = len(st.tokens_in) * block_flops(n0, 0, hidden, inter, mats)
        self.m.report = {"encoder_ms": enc_s * 1000, "encoder_flops": flops, "encoder_flops_baseline": base,
                         "encoder_flops_saved": (1 - flops / base) if base else 0.0,
                         "tokens_per_block": [n // u for n in st.tokens_in], "merged_per_block": merged,
                         "visual_tokens_to_llm": int(self.keep.numel())}
        return output

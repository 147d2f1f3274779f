"""DyCoke (Tao et al., CVPR 2025): training-free video token compression with dynamic KV reduction.

1. Temporal token merging (TTM), before the LLM: the video's frames (here Qwen2-VL temporal slices of
   h x w / 4 tokens) are taken in pairs; the first of a pair keeps all its tokens, the second keeps only
   the (1 - k) share of its tokens least similar (cosine) to the co-located token of the first. Then in
   windows of four, the third frame's kept tokens are re-chosen the same way against the window's first
   frame. Survivors keep their 3-D M-RoPE positions.
2. Dynamic pruning (DP) while decoding: at every step the attention of the new token in layer `layer-1`
   (heads averaged) over the visual KV entries is compared (cosine) with the previous step's; when it
   changed (similarity < `threshold`) the kept set is re-chosen as the top (1 - p) visual entries. Layers
   >= `layer` attend to the text entries and the kept visual entries only; the cache keeps everything,
   so a dropped entry can come back at a later step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from lvlm_atlas.methods.algorithms._common import PrunedVideoRequest, require_video_family
from lvlm_atlas.methods.base import Method
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.session import shorten_prefill
from lvlm_atlas.methods.stages import Stage


def ttm_keep(frames: torch.Tensor, k: float, keep_last_odd_frame: bool = True) -> torch.Tensor:
    """Temporal token merging: (T, N, D) frame tokens -> sorted indices (into T*N) of the surviving tokens."""
    t, n, _ = frames.shape
    keep_n = int((1 - k) * n)
    kept: dict[int, torch.Tensor] = {}
    full = torch.arange(n, device=frames.device)

    def least_similar(a: int, b: int) -> torch.Tensor:
        sim = F.cosine_similarity(frames[a].float(), frames[b].float(), dim=1)
        return sim.topk(keep_n, largest=False).indices

    for i in range(0, t - 1, 2):
        kept[i] = full
        kept[i + 1] = least_similar(i, i + 1)
    for i in range(0, t - 4, 4):        # the official range: the last complete window of four is skipped
        kept[i] = full
        kept[i + 2] = least_similar(i, i + 2)
    if t % 2 == 1 and keep_last_odd_frame:
        kept[t - 1] = full
    idx = [kept[i] + i * n for i in sorted(kept)]
    return torch.sort(torch.cat(idx)).values if idx else full[:0]


@register("dycoke")
@dataclass
class DyCoke(PrunedVideoRequest, Method):
    k: float = 0.3               # TTM: share of a paired frame's tokens pruned as temporal duplicates
    p: float = 0.8               # DP: share of the visual KV entries left out of attention while decoding
    layer: int = 3               # DP: first decoder layer that attends to the pruned visual KV
    threshold: float = 0.9       # DP: re-choose the kept entries when the attention similarity drops below
    reuse_selection: bool = True # DP on steps whose attention did not change: reuse the last kept set
    keep_last_odd_frame: bool = True  # TTM: an unpaired last frame keeps all its tokens

    stage: ClassVar[Stage] = Stage.PRE_LLM
    budget_driven: ClassVar[bool] = False   # the kept count follows from its own parameters
    needs: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self):
        if self.budget is not None:
            raise ValueError("dycoke is set by k (temporal merging) and p (dynamic KV pruning); leave budget unset")
        if not 0.0 <= float(self.k) < 1.0 or not 0.0 <= float(self.p) < 1.0:
            raise ValueError("k and p must lie in [0, 1)")
        self.report: dict = {}

    # --- hooks ------------------------------------------------------------------------------------------
    def install(self, session) -> None:
        a = session.adapter
        require_video_family("dycoke", a)
        if not 1 <= int(self.layer) < a.num_layers:
            raise ValueError(f"dycoke: layer must lie in 1..{a.num_layers - 1} for this model, got {self.layer}")
        self._session = session
        self._adapter = a
        self._req: dict | None = None
        cfg = a.model.config
        self._video_id, self._image_id = int(cfg.video_token_id), int(cfg.image_token_id)
        self._merge = int(cfg.vision_config.spatial_merge_size)
        session.add_forward_pre_hook(a.mm, self._on_mm)
        session.add_forward_pre_hook(a.language_model, self._on_lm)
        session.add_forward_pre_hook(a.attention(self.layer - 1), self._capture_query)
        session.add_forward_hook(a.attention(self.layer - 1), self._score, with_kwargs=True)
        for l in range(self.layer, a.num_layers):
            session.add_forward_pre_hook(a.layers[l], self._mask_layer)

    def _on_mm(self, module, args, kwargs):
        from lvlm_atlas.methods.transformers_adapter import past_length

        if past_length(kwargs) > 0:
            return None
        ids = kwargs.get("input_ids", args[0] if args else None)
        grid = kwargs.get("video_grid_thw")
        self._req = {"ids": ids, "grid": grid, "decode_steps": 0, "reselections": 0, "kept_sum": 0,
                     "last_attn": None, "kept": None}
        return None

    def _prefill(self, req: dict, kwargs: dict) -> dict:
        ids = req["ids"][0]
        embeds = kwargs["inputs_embeds"]
        dev = embeds.device
        L = embeds.shape[1]
        is_vis = (ids == self._video_id) | (ids == self._image_id)
        vis_pos = is_vis.nonzero().squeeze(1)
        req["lm_len"], req["keep_seq"] = L, None
        before = int(vis_pos.numel())
        keep_seq = None
        vid_pos = (ids == self._video_id).nonzero().squeeze(1)
        if req["grid"] is not None and vid_pos.numel() and float(self.k) > 0:
            t, h, w = (int(x) for x in req["grid"][0].tolist())
            n = h * w // (self._merge * self._merge)
            first = vid_pos[: t * n]
            frames = embeds[0, first].reshape(t, n, -1)
            kept_vid = first[ttm_keep(frames, float(self.k), self.keep_last_odd_frame)]
            dropped = torch.ones(L, dtype=torch.bool, device=dev)
            dropped[first] = False
            dropped[kept_vid] = True
            keep_seq = dropped.nonzero().squeeze(1)
        stats = self._session.last
        if keep_seq is not None and keep_seq.numel() < L:
            if kwargs.get("position_ids") is None:
                raise RuntimeError("dycoke: expected M-RoPE position ids at the decoder input")
            req["next_pos"] = shorten_prefill(kwargs, keep_seq)
            req["keep_seq"] = keep_seq
            req["vis_rows"] = is_vis[keep_seq].nonzero().squeeze(1)
        else:
            req["vis_rows"] = vis_pos
        after = int(req["vis_rows"].numel())
        if stats is not None:
            stats.visual_before, stats.visual_after = before, after
        self.report = {"visual_tokens_before": before, "visual_tokens_after_ttm": after}
        return kwargs

    def _capture_query(self, module, args, kwargs):
        req = self._req
        if req is not None:
            req["q_in"] = (kwargs.get("hidden_states", args[0] if args else None), kwargs.get("position_embeddings"))
        return None

    def _score(self, module, args, kwargs, output):
        """After layer-1's attention ran on a decode step: compare its visual attention with the last step's."""
        from lvlm_atlas.methods.signals import _apply_rope
        from lvlm_atlas.methods.transformers_adapter import cache_of, cached_keys

        req = self._req
        if req is None or req.get("vis_rows") is None or req["vis_rows"].numel() == 0:
            return None
        hidden, pe = req.get("q_in") or (None, None)
        cache = cache_of(kwargs)
        if hidden is None or cache is None or hidden.shape[1] != 1 or cache.get_seq_length() <= hidden.shape[1]:
            req["active"] = None
            return None
        hd = module.head_dim
        q = module.q_proj(hidden).view(1, 1, -1, hd).transpose(1, 2)
        cos, sin = pe
        q = _apply_rope(q, cos, sin)
        keys = cached_keys(cache, self.layer - 1)
        groups = q.shape[1] // keys.shape[1]
        if groups > 1:
            keys = keys.repeat_interleave(groups, dim=1)
        probs = (torch.matmul(q.float(), keys.float().transpose(-1, -2)) * float(module.scaling)).softmax(-1)
        attn = probs.mean(1)[0, -1]                               # (T,) heads averaged
        vis_rows = req["vis_rows"]
        image_attention = attn[vis_rows]
        last = req["last_attn"]
        sim = 0.0 if last is None else float(F.cosine_similarity(image_attention, last, dim=0))
        req["last_attn"] = image_attention
        req["decode_steps"] += 1
        if last is None or sim < float(self.threshold):     # the first decode step always chooses
            n_keep = int(vis_rows.numel() * (1 - float(self.p)))
            req["kept"] = vis_rows[torch.topk(image_attention, n_keep, sorted=False).indices]
            req["reselections"] += 1
            req["active"] = req["kept"]
        else:
            req["active"] = req["kept"] if self.reuse_selection else None
        T = keys.shape[2]
        if req["active"] is not None:
            bias = torch.zeros(T, dtype=hidden.dtype, device=hidden.device)
            bias[vis_rows] = torch.finfo(hidden.dtype).min
            bias[req["active"]] = 0
            req["bias"] = bias.view(1, 1, 1, T)
            req["kept_sum"] += int(req["active"].numel())
        else:
            req["kept_sum"] += int(vis_rows.numel())
        self.report.update({"decode_steps": req["decode_steps"], "reselections": req["reselections"],
                            "mean_visual_kv_attended": req["kept_sum"] / req["decode_steps"],
                            "visual_kv_in_cache": int(vis_rows.numel())})
        return None

    def _mask_layer(self, module, args, kwargs):
        req = self._req
        if req is None or req.get("active") is None:
            return None
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        if hidden is None or hidden.shape[1] != 1:
            return None
        bias = req["bias"]
        am = kwargs.get("attention_mask")
        if am is None:
            kwargs["attention_mask"] = bias
        elif torch.is_tensor(am) and am.dim() == 4 and am.shape[-1] == bias.shape[-1]:
            if am.dtype == torch.bool:
                kwargs["attention_mask"] = am & (bias == 0)
            else:
                kwargs["attention_mask"] = am + bias
        else:
            raise NotImplementedError(f"dycoke: cannot combine the decode attention mask of shape {tuple(am.shape)}")
        return args, kwargs

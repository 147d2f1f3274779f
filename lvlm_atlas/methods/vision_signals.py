"""Vision-side signals for `vision`-stage methods, aligned one-to-one with the request's visual tokens.

Captured with a forward pre-hook on one vision attention module (the layer whose output LLaVA feeds to
its projector; the last block for Qwen2-VL) and recomputed only for what is needed:
  * LLaVA / LLaVA-NeXT (CLIP): CLS->patch attention (heads averaged) and the patch keys;
  * Qwen2-VL (no CLS token): mean attention each patch receives within its image, and its keys,
    averaged over each 2x2 merge group so they match the merged visual tokens.
LLaVA-NeXT's crops, unpadding and newline tokens are reproduced with the model's own
`pack_image_features` (newline tokens get attention 0 and zero keys).

Signals: "attention" (n,), "keys" (n, heads*head_dim: heads concatenated), "keys_mean" (n, head_dim:
heads averaged, VisionZip's official merge metric), and on LLaVA-1.5 (one CLIP grid per image) also
"features" (n, C: the patches' output of the feature layer, i.e. the projector's input) and "cls_feature"
(C,: the CLS token's output of that layer), captured with a forward hook on that encoder layer.
"""
from __future__ import annotations

import torch

from lvlm_atlas.methods.signals import clip_cls_attention, mean_received_attention
from lvlm_atlas.methods.transformers_adapter import llava_next_patch_counts, qwen25_window_order, qwen_vision_rotary


def _clip_feature_layer(adapter):
    cfg = adapter.model.config
    fl = cfg.vision_feature_layer
    if not isinstance(fl, int):
        raise NotImplementedError("vision signals need a single vision_feature_layer (got a list)")
    if cfg.vision_feature_select_strategy != "default":
        raise NotImplementedError("vision signals assume the 'default' feature strategy (CLS dropped)")
    tower = adapter.vision_tower
    tower = getattr(tower, "vision_model", tower)  # CLIPVisionModel wraps a vision_model in some versions
    layers = tower.encoder.layers
    idx = fl - 1 if fl > 0 else len(layers) + fl
    return layers[idx]


def install(session) -> None:
    a = session.adapter
    attn = a.vision_tower.blocks[-1].attn if a.is_qwen else _clip_feature_layer(a).self_attn
    session.vision_features = None
    session.vision_last = None
    if a.family == "llava":
        def features(module, args, out):
            session.vision_features = out[0] if isinstance(out, (tuple, list)) else out
            return None

        session.add_forward_hook(_clip_feature_layer(a), features)

        def last(module, args, kwargs):
            session.vision_last = (module, kwargs.get("hidden_states", args[0] if args else None))
            return None

        tower = getattr(a.vision_tower, "vision_model", a.vision_tower)
        session.add_forward_pre_hook(tower.encoder.layers[-1].self_attn, last)

    def capture(module, args, kwargs):
        # the vision tower may run before the decoder-side request starts (generate can encode images
        # up front), so the latest capture is kept on the session and read when the request prunes
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        session.vision_capture = (module, hidden, dict(kwargs))
        return None

    session.add_forward_pre_hook(attn, capture)
    if a.family == "qwen2_5_vl":
        # Qwen2.5-VL runs its vision blocks in window order; keep grid_thw to undo that permutation
        def grid(module, args, kwargs):
            session.vision_grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
            return None

        session.add_forward_pre_hook(a.vision_tower, grid)


@torch.no_grad()
def _qwen_signals(adapter, module, hidden, kwargs, window_grid=None) -> tuple[torch.Tensor, torch.Tensor]:
    rope = qwen_vision_rotary(module)
    n = hidden.shape[0]
    q, k, _ = module.qkv(hidden).reshape(n, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = kwargs["position_embeddings"]
    q, k = rope(q, k, cos, sin)
    q, k = q.transpose(0, 1), k.transpose(0, 1)                          # (H, n, d)
    cu = kwargs["cu_seqlens"].tolist()
    received = torch.cat([mean_received_attention(q[:, s:e], k[:, s:e], float(module.scaling))
                          for s, e in zip(cu[:-1], cu[1:])])
    keys = k.transpose(0, 1).reshape(n, -1)
    vcfg = adapter.model.config.vision_config
    g = vcfg.spatial_merge_size ** 2
    received, keys = received.view(-1, g).mean(1), keys.view(-1, g, keys.shape[-1]).mean(1)
    if window_grid is not None:
        order = window_to_token_order(adapter, window_grid).to(received.device)
        received, keys = received[order], keys[order]
    return received, keys


def window_to_token_order(adapter, grid_thw: torch.Tensor) -> torch.Tensor:
    """Qwen2.5-VL: permutation taking merged vision tokens from window order back to prompt order."""
    return qwen25_window_order(adapter.model.config.vision_config, grid_thw)


@torch.no_grad()
def _llava_next_pack(adapter, att: torch.Tensor, keys: torch.Tensor, image_sizes) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = adapter.model.config
    counts = llava_next_patch_counts(cfg, image_sizes)
    feats = torch.cat([att.unsqueeze(-1).to(keys.dtype), keys], dim=-1)  # pack both in one pass
    per_image = list(torch.split(feats, counts, dim=0))
    newline = torch.zeros(feats.shape[-1], dtype=feats.dtype, device=feats.device)
    packed, _ = adapter.mm.pack_image_features(per_image, image_sizes, cfg.vision_feature_select_strategy,
                                               image_newline=newline)
    packed = torch.cat(packed, 0) if isinstance(packed, (list, tuple)) else packed
    return packed[:, 0].float(), packed[:, 1:]


def compute(session, req) -> dict[str, torch.Tensor]:
    cap = session.vision_capture
    if cap is None:
        raise RuntimeError(f"{session.method.name}: no vision-tower pass was seen for this request "
                           "(pass pixel_values with the prompt)")
    module, hidden, kwargs = cap
    a = session.adapter
    extra: dict[str, torch.Tensor] = {}
    if a.is_qwen:
        grid = getattr(session, "vision_grid", None) if a.family == "qwen2_5_vl" else None
        if a.family == "qwen2_5_vl" and grid is None:
            raise RuntimeError("Qwen2.5-VL vision signals need the vision tower's grid_thw; none was captured")
        att, keys = _qwen_signals(a, module, hidden, kwargs, window_grid=grid)
    else:
        att, keys = clip_cls_attention(module, hidden)
        feats = getattr(session, "vision_features", None)
        if a.family == "llava" and feats is not None:
            extra["cls_feature"] = feats[:, 0].reshape(-1, feats.shape[-1])
            extra["features"] = feats[:, 1:].reshape(-1, feats.shape[-1])
        last = getattr(session, "vision_last", None)
        if a.family == "llava" and last is not None and last[1].shape[0] == 1:
            # PruMerge+'s signal: the last CLIP layer's q/k as ONE head over all channels
            lmod, lh = last
            q, k = lmod.q_proj(lh[:, :1])[0], lmod.k_proj(lh)[0]            # (1, C), (1+N, C)
            p = ((q.float() @ k.float().T) * k.shape[-1] ** -0.5).softmax(-1)[0]
            extra["cls_attention_last"] = p[1:]
            extra["keys_last"] = k[1:]
        if a.family == "llava_next":
            sizes = req.mm_kwargs.get("image_sizes")
            if sizes is None:
                raise NotImplementedError(
                    f"{session.method.name} on LLaVA-NeXT needs image_sizes at the model call to align vision "
                    "signals with the packed crops; transformers' generate() pre-encodes images and drops them. "
                    "Use methods.harness.greedy_generate (or call the model directly) instead.")
            att, keys = _llava_next_pack(a, att, keys, sizes)
        else:
            att, keys = att.reshape(-1), keys.reshape(-1, keys.shape[-1])
    n = req.layout.n_visual
    if att.shape[0] != n:
        raise RuntimeError(f"vision signals cover {att.shape[0]} tokens but the prompt has {n} image tokens")
    heads = int(module.num_heads)
    keys_mean = keys.reshape(n, heads, -1).mean(1)
    return {"attention": att.float(), "keys": keys, "keys_mean": keys_mean, **extra}

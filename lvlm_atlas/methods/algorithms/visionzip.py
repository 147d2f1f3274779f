"""VisionZip (Yang et al., CVPR 2025): keep the few visual tokens the vision encoder itself attends to,
plus a handful of merged "contextual" tokens.

Official rule (github.com/dvlab-research/VisionZip, visionzip/clip_encoder.py, utils.py, main.py), the
default here:
1. Dominant tokens: `visionzip(model, dominant=D, contextual=C)` keeps the CLS token plus the D-1 patches
   receiving the most CLS attention in the feature layer (the one whose output feeds the projector;
   attention summed over heads). The CLS token counts as one of the D dominant tokens.
2. Contextual tokens: the remaining patches, in raster order, get C targets at indices
   0, s, 2s, ... (s = max(1, remaining // C)); every other remaining patch joins the target whose key
   (that layer's keys AVERAGED over heads) is most cosine-similar; each contextual token is
   target + mean of the tokens assigned to it (the target itself is not in the mean).
3. Merging happens on the feature-layer output, before the projector.
Budget = D + C; by default C = round(budget * 10/64) (the paper's 54+10, 108+20, 162+30 splits).

Here the kept tokens stay in their rows and keep their positions; the CLS token, which the HF LLaVA
"default" feature strategy drops, is fed in the row of the first visual token not otherwise kept.
On LLaVA-NeXT and Qwen2-VL/2.5-VL (no CLS, or packed crops) dominant tokens are budget - C patches and
contextual tokens are merged on the projected embeddings (target + mean of the others).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lvlm_atlas.methods.base import Method, PrefillContext, Selection
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage
from lvlm_atlas.methods.algorithms._common import merge_into_nearest, uniform_indices

METRICS = ("head_mean", "concat")
MERGES = ("target_plus_mean", "average")
SPACINGS = ("from_start", "centred")


def contextual_targets(n_rest: int, n_ctx: int, spacing: str = "from_start", device=None) -> torch.Tensor:
    """Positions (into the remaining tokens) of the contextual targets."""
    if spacing == "centred":
        return uniform_indices(n_rest, n_ctx, device=device)
    step = max(1, n_rest // n_ctx)
    return torch.arange(0, n_rest, step, device=device)[:n_ctx]


def target_plus_mean(targets: torch.Tensor, others: torch.Tensor, metric: torch.Tensor,
                     values: torch.Tensor) -> torch.Tensor:
    """VisionZip's contextual tokens: each target's value plus the mean value of the `others` whose
    metric is most cosine-similar to it (0 when none is)."""
    out = values[targets].float()
    if others.numel() == 0:
        return out.to(values.dtype)
    m = F.normalize(metric.float(), dim=-1)
    assign = (m[others] @ m[targets].T).argmax(dim=1)
    acc = torch.zeros_like(out).index_add_(0, assign, values[others].float())
    cnt = torch.zeros(targets.numel(), device=out.device).index_add_(
        0, assign, torch.ones(others.numel(), device=out.device)).clamp(min=1)
    return (out + acc / cnt[:, None]).to(values.dtype)


@register("visionzip")
@dataclass
class VisionZip(Method):
    contextual_ratio: float = 10 / 64
    count_cls: bool = True                  # the CLS token is one of the dominant tokens (official)
    merge_metric: str = "head_mean"         # keys averaged over heads (official) or "concat"
    contextual_merge: str = "target_plus_mean"   # official; "average" averages target and members
    target_spacing: str = "from_start"      # targets at 0, s, 2s, ... (official); "centred"

    stage = Stage.VISION
    needs = frozenset({"vision_attention"})

    def __post_init__(self):
        for name, allowed in (("merge_metric", METRICS), ("contextual_merge", MERGES), ("target_spacing", SPACINGS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    def split(self, k: int) -> tuple[int, int]:
        """(dominant, contextual) of a budget k; the dominant count includes the CLS token."""
        n_ctx = min(int(round(k * self.contextual_ratio)), k - 1) if k > 1 else 0
        return k - n_ctx, n_ctx

    def select(self, ctx: PrefillContext) -> Selection:
        v = ctx.vision
        att = v["attention"]
        emb = ctx.visual_embeds
        n, k = att.shape[0], ctx.keep
        n_dom, n_ctx = self.split(k)
        cls_feat = v.get("cls_feature")
        use_cls = self.count_cls and cls_feat is not None and cls_feat.shape[0] == 1 and ctx.project is not None
        dominant = torch.topk(att, n_dom - 1 if use_cls else n_dom).indices
        rest_mask = torch.ones(n, dtype=torch.bool, device=att.device)
        rest_mask[dominant] = False
        rest = rest_mask.nonzero().squeeze(1)
        keep, embeds = [dominant], [emb[dominant]]
        if n_ctx > 0 and rest.numel() > 0:
            targets = rest[contextual_targets(rest.numel(), n_ctx, self.target_spacing, device=att.device)]
            others_mask = rest_mask.clone()
            others_mask[targets] = False
            others = others_mask.nonzero().squeeze(1)
            metric = v["keys_mean"] if self.merge_metric == "head_mean" else v["keys"]
            if self.contextual_merge == "average":
                merged = merge_into_nearest(targets, others, metric, emb)
            elif "features" in v and ctx.project is not None:     # official: merge before the projector
                feats = target_plus_mean(targets, others, metric, v["features"])
                merged = ctx.project(feats.unsqueeze(0))[0].to(emb.dtype)
            else:
                merged = target_plus_mean(targets, others, metric, emb)
            keep.append(targets)
            embeds.append(merged)
        if use_cls:
            taken = torch.zeros(n, dtype=torch.bool, device=att.device)
            taken[torch.cat(keep)] = True
            slot = (~taken).nonzero()[0]
            keep.append(slot)
            embeds.append(ctx.project(cls_feat.unsqueeze(0))[0].to(emb.dtype))
        return Selection(keep=torch.cat(keep), embeds=torch.cat(embeds))

"""Per-family access to the public module boundaries of a loaded LVLM (no patching of library classes)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lvlm_atlas.methods.layout import TokenLayout

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
        return str(self.text_config._attn_implementation)

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

"""Shared helpers for the methods tests: tiny models and a deterministic noise image."""
from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

TINY = ["tiny-llava", "tiny-llava-next", "tiny-qwen2-vl", "tiny-qwen2.5-vl"]


def noise_image(seed: int = 0, size=(200, 150)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@functools.lru_cache(maxsize=None)
def bundle(name: str, attn: str = "sdpa", dtype: str = "float32"):
    from lvlm_atlas.methods import presets

    torch.set_grad_enabled(False)
    return presets.load(name, attn=attn, dtype=dtype)


def inputs(b, prompt: str = "Describe the picture.", seed: int = 0) -> dict:
    return b.inputs(noise_image(seed), prompt)


def hook_count(model) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def decoder_inputs(model, inp: dict) -> tuple:
    """(inputs_embeds, position_ids) the decoder stack receives for `inp` on the unmodified model."""
    from lvlm_atlas.methods.transformers_adapter import ModelAdapter

    lm = ModelAdapter.of(model).language_model
    got = {}
    h = lm.register_forward_pre_hook(lambda m, a, kw: got.setdefault("kw", dict(kw)) and None, with_kwargs=True)
    try:
        model(**inp)
    finally:
        h.remove()
    return got["kw"]["inputs_embeds"], got["kw"]["position_ids"]

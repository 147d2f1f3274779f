"""Model presets and loading: tiny random models (seconds), real-size random architectures, hub checkpoints.

`load(name)` returns a `ModelBundle` with the model (eval mode), the way to turn (image, prompt) into
model inputs, and the attention backend actually in use. Hub ids (anything with a "/") load with
`from_pretrained`; `<preset>@random` names build the architecture from a config with random weights.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from lvlm_atlas.methods.tokenizer import ByteTokenizer

TINY_VOCAB = 320  # byte tokenizer (259 ids) + headroom for special tokens


def _llama_text(hidden=64, layers=4, heads=4, kv_heads=2, inter=128, vocab=TINY_VOCAB, **kw) -> dict:
    return dict(model_type="llama", hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=kv_heads, intermediate_size=inter, vocab_size=vocab,
                max_position_embeddings=4096, **kw)


def _clip_vision(hidden=32, layers=2, heads=2, inter=64, image_size=112, patch=14) -> dict:
    return dict(model_type="clip_vision_model", hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=inter, image_size=image_size, patch_size=patch, projection_dim=hidden)


def _llava_config(text: dict, vision: dict):
    from transformers import LlavaConfig

    return LlavaConfig(text_config=text, vision_config=vision, image_token_id=text["vocab_size"] - 1,
                       vision_feature_layer=-2, vision_feature_select_strategy="default")


def _llava_next_config(text: dict, vision: dict, pinpoints: list[list[int]]):
    from transformers import LlavaNextConfig

    return LlavaNextConfig(text_config=text, vision_config=vision, image_token_id=text["vocab_size"] - 1,
                           image_grid_pinpoints=pinpoints, vision_feature_layer=-2,
                           vision_feature_select_strategy="default")


def _qwen2_vl_config(hidden=64, layers=4, heads=4, kv_heads=2, inter=128, vocab=TINY_VOCAB,
                     v_embed=32, v_depth=2, v_heads=2, mrope=(2, 3, 3)):
    from transformers import Qwen2VLConfig

    special = dict(image_token_id=vocab - 1, video_token_id=vocab - 2, vision_start_token_id=vocab - 3,
                   vision_end_token_id=vocab - 4)
    text = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                intermediate_size=inter, vocab_size=vocab, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope)})
    vision = dict(depth=v_depth, embed_dim=v_embed, hidden_size=hidden, num_heads=v_heads, mlp_ratio=2,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    return Qwen2VLConfig(text_config=text, vision_config=vision, bos_token_id=1, eos_token_id=2, **special)


def _qwen2_5_vl_config(hidden=64, layers=4, heads=4, kv_heads=2, inter=128, vocab=TINY_VOCAB,
                       v_hidden=32, v_depth=2, v_heads=2, v_inter=64, window=56, mrope=(2, 3, 3)):
    from transformers import Qwen2_5_VLConfig

    special = dict(image_token_id=vocab - 1, video_token_id=vocab - 2, vision_start_token_id=vocab - 3,
                   vision_end_token_id=vocab - 4)
    text = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=hidden, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=inter, vocab_size=vocab,
                max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope)})
    vision = dict(depth=v_depth, hidden_size=v_hidden, out_hidden_size=hidden, num_heads=v_heads,
                  intermediate_size=v_inter, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  in_channels=3, window_size=window, fullatt_block_indexes=[v_depth - 1])
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, bos_token_id=1, eos_token_id=2, **special)


@dataclass(frozen=True)
class Preset:
    name: str
    family: str                      # llava | llava_next | qwen2_vl | qwen2_5_vl
    build_config: Callable[[], Any]
    image_size: tuple[int, int]      # (width, height) the input image is resized to
    description: str


def _presets() -> dict[str, Preset]:
    p = [
        Preset("tiny-llava", "llava", lambda: _llava_config(_llama_text(), _clip_vision()), (112, 112),
               "LLaVA-1.5 layout, 4-layer Llama, 2-layer CLIP, 64 visual tokens"),
        Preset("tiny-llava-next", "llava_next",
               lambda: _llava_next_config(_llama_text(), _clip_vision(image_size=56), [[56, 112], [112, 56], [112, 112]]),
               (112, 84), "LLaVA-NeXT anyres layout (base + crops + newline tokens), 4-layer Llama"),
        Preset("tiny-qwen2-vl", "qwen2_vl", lambda: _qwen2_vl_config(), (224, 112),
               "Qwen2-VL layout (dynamic resolution, 3-D M-RoPE), 4-layer text model, 32 visual tokens"),
        Preset("tiny-qwen2.5-vl", "qwen2_5_vl", lambda: _qwen2_5_vl_config(), (224, 112),
               "Qwen2.5-VL layout (windowed vision attention, 3-D M-RoPE), 4-layer text model, 32 visual tokens"),
        Preset("mid-llava@random", "llava",
               lambda: _llava_config(_llama_text(hidden=1024, layers=16, heads=16, kv_heads=16, inter=2816, vocab=32064),
                                     _clip_vision(hidden=256, layers=4, heads=4, inter=1024, image_size=336)),
               (336, 336), "mid-size LLaVA (16 layers, hidden 1024, 576 visual tokens) for CPU speed checks"),
        Preset("llava-1.5-7b@random", "llava",
               lambda: _llava_config(_llama_text(hidden=4096, layers=32, heads=32, kv_heads=32, inter=11008, vocab=32064),
                                     _clip_vision(hidden=1024, layers=24, heads=16, inter=4096, image_size=336)),
               (336, 336), "LLaVA-1.5-7B architecture (CLIP-L/336 + Llama-2-7B), random weights"),
        Preset("llava-1.5-13b@random", "llava",
               lambda: _llava_config(_llama_text(hidden=5120, layers=40, heads=40, kv_heads=40, inter=13824, vocab=32064),
                                     _clip_vision(hidden=1024, layers=24, heads=16, inter=4096, image_size=336)),
               (336, 336), "LLaVA-1.5-13B architecture, random weights"),
        Preset("llava-next-7b@random", "llava_next",
               lambda: _llava_next_config(_llama_text(hidden=4096, layers=32, heads=32, kv_heads=32, inter=11008, vocab=32064),
                                          _clip_vision(hidden=1024, layers=24, heads=16, inter=4096, image_size=336),
                                          [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]),
               (672, 672), "LLaVA-NeXT-7B (Vicuna) architecture, any-res 672x672 = 2,880 visual tokens, random weights"),
        Preset("qwen2-vl-7b@random", "qwen2_vl",
               lambda: _qwen2_vl_config(hidden=3584, layers=28, heads=28, kv_heads=4, inter=18944, vocab=152064,
                                        v_embed=1280, v_depth=32, v_heads=16, mrope=(16, 24, 24)),
               (448, 448), "Qwen2-VL-7B architecture, random weights"),
    ]
    return {x.name: x for x in p}


PRESETS = _presets()

HUB_FAMILIES = {"llava": "llava", "llava_next": "llava_next", "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_5_vl"}


def attention_backend(requested: str | None = None, device: str = "cpu") -> str:
    """The attention implementation to use: the requested one, else flash-attn when usable, else SDPA."""
    if requested:
        return requested
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


@dataclass
class ModelBundle:
    name: str
    family: str
    model: Any
    attn_implementation: str
    device: str
    dtype: torch.dtype
    image_size: tuple[int, int] | None = None
    processor: Any = None            # hub models: the checkpoint's processor
    tokenizer: Any = None            # presets: ByteTokenizer
    image_processor: Any = None      # presets: a library image processor with matching sizes
    info: dict = field(default_factory=dict)

    @property
    def eos_token_id(self) -> int | None:
        tok = self.tokenizer if self.processor is None else getattr(self.processor, "tokenizer", None)
        return getattr(tok, "eos_token_id", None)

    def decode(self, ids) -> str:
        tok = self.tokenizer if self.processor is None else self.processor.tokenizer
        return tok.decode(list(ids), skip_special_tokens=True)

    def inputs(self, image, prompt: str) -> dict:
        from lvlm_atlas.methods.inputs import build_inputs

        return build_inputs(self, image, prompt)


def _image_processor(family: str, size: tuple[int, int], config):
    import transformers

    def pick(name: str):  # the PIL backends need no torchvision; older releases only have the plain class
        return getattr(transformers, name + "Pil", None) or getattr(transformers, name)

    CLIPImageProcessor, LlavaNextImageProcessor, Qwen2VLImageProcessor = (
        pick("CLIPImageProcessor"), pick("LlavaNextImageProcessor"), pick("Qwen2VLImageProcessor"))

    if family == "llava":
        s = config.vision_config.image_size
        return CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
    if family == "llava_next":
        s = config.vision_config.image_size
        return LlavaNextImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s},
                                       image_grid_pinpoints=config.image_grid_pinpoints)
    w, h = size
    return Qwen2VLImageProcessor(min_pixels=w * h, max_pixels=w * h, patch_size=14, merge_size=2, temporal_patch_size=2)


def _family_of(model) -> str:
    mt = model.config.model_type
    if mt not in HUB_FAMILIES:
        raise ValueError(f"unsupported model type {mt!r}; supported: {', '.join(HUB_FAMILIES)}")
    return HUB_FAMILIES[mt]


def load(name: str, *, device: str = "cpu", dtype: str | torch.dtype | None = None, attn: str | None = None,
         seed: int = 0) -> ModelBundle:
    """Load a preset (`tiny-llava`, `llava-1.5-7b@random`, ...) or a hub id (`llava-hf/llava-1.5-7b-hf`)."""
    backend = attention_backend(attn, device)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    if name in PRESETS:
        preset = PRESETS[name]
        from transformers import AutoModelForImageTextToText

        config = preset.build_config()
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForImageTextToText.from_config(config, attn_implementation=backend, dtype=dtype)
        model.eval()
        tok = ByteTokenizer(vocab_size=config.text_config.vocab_size)
        return ModelBundle(name, preset.family, model, backend, device, dtype, image_size=preset.image_size,
                           tokenizer=tok, image_processor=_image_processor(preset.family, preset.image_size, config),
                           info={"weights": "random", "description": preset.description})
    if "/" not in name:
        raise ValueError(f"unknown model {name!r}: use a preset ({', '.join(PRESETS)}) or a hub id like "
                         "llava-hf/llava-1.5-7b-hf")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, attn_implementation=backend,
                                                        device_map=device if device != "cpu" else None)
    model.eval()
    processor = AutoProcessor.from_pretrained(name)
    return ModelBundle(name, _family_of(model), model, backend, device, dtype, processor=processor,
                       info={"weights": "pretrained"})

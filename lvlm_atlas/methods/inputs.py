"""Turn (PIL image, prompt) into model inputs for a ModelBundle (hub processor, or preset pieces)."""
from __future__ import annotations

import torch


def _hub_inputs(bundle, image, prompt: str) -> dict:
    proc = bundle.processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    if getattr(proc, "chat_template", None):
        text = proc.apply_chat_template(messages, add_generation_prompt=True)
    else:
        text = f"USER: <image>\n{prompt} ASSISTANT:"
    return dict(proc(images=image, text=text, return_tensors="pt"))


def _num_image_tokens(bundle, pixel: dict) -> int:
    cfg = bundle.model.config
    if bundle.family == "llava":
        side = cfg.vision_config.image_size // cfg.vision_config.patch_size
        return side * side
    if bundle.family == "llava_next":
        # anyres packing (crops, unpadding, newline tokens) is the model's own business: ask it
        with torch.no_grad():
            out = bundle.model.model.get_image_features(pixel_values=pixel["pixel_values"],
                                                        image_sizes=pixel["image_sizes"], return_dict=True)
        return int(sum(f.shape[0] for f in out.pooler_output))
    merge = cfg.vision_config.spatial_merge_size
    return int(pixel["image_grid_thw"].prod(-1).sum().item()) // (merge * merge)


def _one_image(bundle, image) -> tuple[dict, list[int]]:
    cfg = bundle.model.config
    pixel = dict(bundle.image_processor(images=image, return_tensors="pt"))
    pixel = {k: v for k, v in pixel.items() if k in ("pixel_values", "image_sizes", "image_grid_thw")}
    img = [cfg.image_token_id] * _num_image_tokens(bundle, pixel)
    if bundle.family in ("qwen2_vl", "qwen2_5_vl"):
        img = [cfg.vision_start_token_id] + img + [cfg.vision_end_token_id]
    return pixel, img


def _preset_inputs(bundle, image, prompt: str) -> dict:
    """One request with one image, or several (a list: multi-image prompts, video frames as images)."""
    cfg = bundle.model.config
    tok = bundle.tokenizer
    images = image if isinstance(image, (list, tuple)) else [image]
    size = bundle.image_size
    parts = [_one_image(bundle, im.convert("RGB") if size is None else im.convert("RGB").resize(size))
             for im in images]
    pixel = {k: torch.cat([p[k] for p, _ in parts]) for k in parts[0][0]}
    img = [t for _, ids in parts for t in ids]
    ids = tok.encode("USER: ") + img + tok.encode("\n" + prompt + " ASSISTANT:", add_bos=False)
    input_ids = torch.tensor([ids], dtype=torch.long)
    out = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), **pixel}
    if bundle.family in ("qwen2_vl", "qwen2_5_vl"):
        out["mm_token_type_ids"] = (input_ids == cfg.image_token_id).to(torch.int32)
    return out


def build_inputs(bundle, image, prompt: str) -> dict:
    out = _hub_inputs(bundle, image, prompt) if bundle.processor is not None else _preset_inputs(bundle, image, prompt)
    return {k: (v.to(bundle.device) if torch.is_tensor(v) else v) for k, v in out.items()}

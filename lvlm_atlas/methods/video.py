"""Video input for the Qwen2-VL family: frames read with PyAV, packed into Qwen2-VL temporal patches.

`read_frames(path, num_frames)` decodes `num_frames` frames sampled uniformly over the video (PyAV, the
optional `av` package of the `methods` extra). `video_inputs(bundle, frames, prompt)` builds the model
inputs of a preset or hub Qwen2-VL / Qwen2.5-VL model: each pair of consecutive frames is one temporal
patch (temporal_patch_size 2), so T frames give T/2 temporal slices of (h/28) x (w/28) video tokens
each, with 3-D M-RoPE positions over (time, height, width) computed by the model itself.
"""
from __future__ import annotations

import torch

QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl")


def read_frames(path: str, num_frames: int = 8) -> list:
    """`num_frames` RGB PIL frames sampled uniformly (by index) from the video file at `path`."""
    try:
        import av
    except ImportError:
        raise RuntimeError("--video needs PyAV: pip install 'av>=14,<17' (part of the methods extra)") from None
    with av.open(str(path)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    idx = torch.linspace(0, len(frames) - 1, num_frames).round().long().tolist()
    return [frames[i].convert("RGB") for i in idx]


def _pack_frames(bundle, frames: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel_values_videos, video_grid_thw) for a preset: the image processor's patches of each frame,
    two consecutive frames sharing one temporal patch."""
    cfg = bundle.model.config.vision_config
    tps = int(cfg.temporal_patch_size)
    if len(frames) % tps:
        frames = frames + [frames[-1]] * (tps - len(frames) % tps)   # pad with the last frame, as Qwen does
    per_frame, grid = [], None
    for f in frames:
        out = bundle.image_processor(images=f.resize(bundle.image_size), return_tensors="pt")
        px, thw = out["pixel_values"], out["image_grid_thw"]
        grid = thw[0]
        n = px.shape[0]
        per_frame.append(px.view(n, 3, tps, -1)[:, :, 0])                # (N, C, p*p): this frame's pixels
    slices = []
    for t in range(0, len(per_frame), tps):
        pair = torch.stack(per_frame[t:t + tps], dim=2)                   # (N, C, tps, p*p)
        slices.append(pair.reshape(pair.shape[0], -1))
    thw = torch.tensor([[len(per_frame) // tps, int(grid[1]), int(grid[2])]])
    return torch.cat(slices, dim=0), thw


def video_inputs(bundle, frames: list, prompt: str) -> dict:
    """Model inputs for a video question on a Qwen2-VL-family model (preset or hub checkpoint)."""
    if bundle.family not in QWEN_FAMILIES:
        raise NotImplementedError(f"video input is implemented for Qwen2-VL / Qwen2.5-VL (got {bundle.family})")
    cfg = bundle.model.config
    if bundle.processor is not None:
        proc = bundle.processor
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        text = proc.apply_chat_template(messages, add_generation_prompt=True)
        out = dict(proc(videos=[frames], text=text, return_tensors="pt"))
    else:
        pixel, thw = _pack_frames(bundle, frames)
        merge = int(cfg.vision_config.spatial_merge_size)
        n = int(thw.prod()) // (merge * merge)
        tok = bundle.tokenizer
        vid = [cfg.vision_start_token_id] + [cfg.video_token_id] * n + [cfg.vision_end_token_id]
        ids = tok.encode("USER: ") + vid + tok.encode("\n" + prompt + " ASSISTANT:", add_bos=False)
        input_ids = torch.tensor([ids], dtype=torch.long)
        out = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "pixel_values_videos": pixel,
               "video_grid_thw": thw, "mm_token_type_ids": (input_ids == cfg.video_token_id).to(torch.int32) * 2}
    return {k: (v.to(bundle.device) if torch.is_tensor(v) else v) for k, v in out.items()}


def synthetic_frames(num_frames: int = 8, size: tuple[int, int] = (224, 112), seed: int = 0) -> list:
    """`num_frames` RGB PIL frames of a red square moving over a noisy still background: most tokens repeat
    from frame to frame, as in real footage, so temporal methods have redundancy to find."""
    from PIL import Image

    return [Image.fromarray(a) for a in _frame_arrays(num_frames, size, seed)]


def _frame_arrays(num_frames: int, size: tuple[int, int], seed: int) -> list:
    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = size
    background = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    side = max(4, min(32, h // 3, w // 3))
    out = []
    for i in range(num_frames):
        img = background.copy()
        x = (i * 17) % max(1, w - side)
        img[min(20, h - side):min(20, h - side) + side, x:x + side] = (255, 0, 0)
        out.append(img)
    return out


def write_test_video(path: str, num_frames: int = 8, size: tuple[int, int] = (224, 112), seed: int = 0) -> str:
    """A small synthetic video (the frames of `synthetic_frames`, MPEG-4 encoded) for tests and examples."""
    import av

    w, h = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for img in _frame_arrays(num_frames, size, seed):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)

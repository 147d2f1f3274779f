"""Benchmark workloads named after the survey's scenarios, where visual tokens dominate and methods matter.

Each workload fixes the model architecture (a real-size random-weight preset; `tiny` is its offline
stand-in for CPU tests), how many images one request carries and at which size, and the batch size.
Random weights: a workload measures tokens, bytes and time, never accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    model: str                     # real-size preset
    tiny: str                      # CPU stand-in with the same layout
    images: int = 1                # images per request (the "video" workload passes frames as images)
    video_frames: int = 0          # > 0: each request is one video of this many frames, through the video path
    image_size: tuple[int, int] | None = None   # None: the preset's own size
    batch: int = 1
    prompt: str = "Describe what is shown in detail."


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("single-image", "one 336 px image on LLaVA-1.5-7B: 576 visual tokens (the pruning papers' protocol)",
             "llava-1.5-7b@random", "tiny-llava"),
    Workload("high-res", "one 672x672 image on LLaVA-NeXT-7B any-res: about 2.9k visual tokens (base + 4 crops + newline tokens)",
             "llava-next-7b@random", "tiny-llava-next", image_size=(672, 672)),
    Workload("multi-image", "8 images of 336 px on LLaVA-1.5-7B in one prompt: 4,608 visual tokens",
             "llava-1.5-7b@random", "tiny-llava", images=8),
    Workload("video", "24 frames of 672x672 on Qwen2-VL-7B passed as images: 13,824 visual tokens (long-context "
             "video-like prefill; the model's temporal patch merging of real video input is not used)",
             "qwen2-vl-7b@random", "tiny-qwen2-vl", images=24, image_size=(672, 672)),
    Workload("video-clip", "one 32-frame 448x448 video on Qwen2-VL-7B through its video path (2-frame temporal "
             "patches): 16 x 256 = 4,096 visual tokens; the input of video methods (DyCoke, FastVID)",
             "qwen2-vl-7b@random", "tiny-qwen2-vl", video_frames=32, image_size=(448, 448)),
]}
TINY_VIDEO_FRAMES = 8          # frames of the CPU stand-in's video


def get(name: str, batch: int | None = None) -> Workload:
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; write one of {', '.join(WORKLOADS)}")
    w = WORKLOADS[name]
    if batch is not None:
        if batch < 1:
            raise ValueError(f"--batch must be at least 1, got {batch}")
        w = replace(w, batch=batch)
    return w


def items(workload: Workload, n: int = 1, seed: int = 0, tiny: bool = False) -> list[dict]:
    """`n` requests of synthetic noise images, or of synthetic videos (a square moving over a noisy still
    background), deterministic; no answers (no accuracy)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    size = (112, 112) if tiny else (workload.image_size or (336, 336))
    out = []
    if workload.video_frames:
        from lvlm_atlas.methods.video import synthetic_frames

        frames = min(workload.video_frames, TINY_VIDEO_FRAMES) if tiny else workload.video_frames
        return [{"video": synthetic_frames(frames, size, seed + i), "question": workload.prompt, "answers": []}
                for i in range(n)]
    for _ in range(n):
        imgs = [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
                for _ in range(workload.images)]
        out.append({"images": imgs, "question": workload.prompt, "answers": []})
    return out

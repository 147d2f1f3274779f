"""Roofline cost of one request: visual tokens, FLOPs, KV bytes, intensity and time bounds per stage."""
from __future__ import annotations

import json
import re
import sys

from lvlm_atlas import costmodel as cm


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[x×X](\d+)", text.strip())
    if not m:
        raise ValueError(f"size {text!r} must look like WIDTHxHEIGHT, e.g. 1280x720")
    return int(m.group(1)), int(m.group(2))


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="model id from catalog/models.yaml, e.g. qwen2.5-vl-72b")
    parser.add_argument("--gpu", default="a100", help="GPU id from catalog/gpus.yaml (default: a100)")
    parser.add_argument("--gpus", type=int, default=1, metavar="N",
                        help="number of such GPUs (ideal tensor parallelism: N x compute, bandwidth, memory)")
    parser.add_argument("--images", type=int, default=0, help="number of images")
    parser.add_argument("--image-size", default="1280x1280", help="WxH of each image (default 1280x1280)")
    parser.add_argument("--video", type=float, default=0.0, metavar="SECONDS", help="video length in seconds")
    parser.add_argument("--fps", type=float, default=2.0, help="frames sampled per second of video (default 2)")
    parser.add_argument("--resolution", default="1280x720", help="video frame WxH (default 1280x720)")
    parser.add_argument("--text-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--dtype-bytes", type=int, default=2, help="bytes per weight/KV element (2 = FP16/BF16)")
    parser.add_argument("--budget", type=float, default=None,
                        help="visual tokens kept: a fraction (0.25) or a count (144)")
    parser.add_argument("--kv-budget", type=float, default=None, help="fraction of the KV cache kept while decoding")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _check_numbers(args) -> None:
    """Range checks, before any estimate: raise ValueError with what to write instead."""
    checks = [
        (args.images >= 0, f"--images {args.images}: the number of images cannot be negative; write 0 or more"),
        (args.video >= 0, f"--video {args.video:g}: the video length cannot be negative; write seconds, e.g. 30"),
        (args.fps > 0, f"--fps {args.fps:g}: frames per second must be positive, e.g. 2"),
        (args.text_tokens >= 0, f"--text-tokens {args.text_tokens}: cannot be negative; write e.g. 64"),
        (args.output_tokens >= 0, f"--output-tokens {args.output_tokens}: cannot be negative; write e.g. 128"),
        (args.dtype_bytes in (1, 2, 4), f"--dtype-bytes {args.dtype_bytes}: write 1 (8-bit), 2 (FP16/BF16) or 4 (FP32)"),
        (args.gpus >= 1, f"--gpus {args.gpus}: write 1 or more GPUs"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _budget(args) -> cm.Budget | None:
    if args.budget is None and args.kv_budget is None:
        return None
    tokens = fraction = None
    if args.budget is not None:
        if args.budget <= 0:
            raise ValueError(f"--budget {args.budget:g}: write a fraction in (0, 1] (e.g. 0.25) "
                             "or a number of visual tokens kept (e.g. 144)")
        if args.budget <= 1:
            fraction = args.budget
        elif args.budget != int(args.budget):
            raise ValueError(f"--budget {args.budget:g}: a count of tokens is a whole number (e.g. 144); "
                             "a fraction is at most 1 (e.g. 0.25)")
        else:
            tokens = int(args.budget)
    if args.kv_budget is not None and not 0 < args.kv_budget <= 1:
        raise ValueError(f"--kv-budget {args.kv_budget:g}: write a fraction in (0, 1], e.g. 0.5")
    return cm.Budget(keep_visual_tokens=tokens, keep_visual_fraction=fraction, kv_fraction=args.kv_budget)


def _fmt(x: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.2f} {unit}"


def format_breakdown(b: cm.Breakdown, base: cm.Breakdown | None = None) -> str:
    lines = [
        f"{b.model.label} on {b.gpu.label} (ridge point {b.gpu.ridge:.0f} FLOPs/byte), {b.bytes_per_param}-byte elements",
        f"visual tokens: {b.visual_tokens:,}" + (f" (of {b.extra['visual_tokens_before_budget']:,} before the budget)"
                                                 if b.visual_tokens != b.extra["visual_tokens_before_budget"] else "")
        + f", text tokens: {b.text_tokens:,}, output tokens: {b.output_tokens:,}",
        "",
        f"{'stage':<12}{'FLOPs':>14}{'bytes':>14}{'intensity':>12}{'bound':>10}{'time':>14}",
    ]
    for s in (b.encoding, b.prefilling, b.decoding):
        lines.append(f"{s.name:<12}{_fmt(s.flops, 'FLOP'):>14}{_fmt(s.bytes, 'B'):>14}{s.intensity:>12.1f}"
                     f"{s.bound:>10}{s.time_s * 1e3:>11.2f} ms")
    lines += [
        "",
        f"TTFT >= {b.ttft_s * 1e3:.2f} ms   TPOT >= {b.tpot_s * 1e3:.3f} ms   total >= {b.total_s * 1e3:.1f} ms",
        f"KV cache after prefill: {_fmt(b.kv_bytes_after_prefill, 'B')}  at the last token: {_fmt(b.kv_bytes_final, 'B')}"
        f"  (visual share {b.visual_kv_share:.0%})",
    ]
    if base is not None:
        s = cm.savings(base, b)
        lines.append("saved by the budget: " + ", ".join(f"{k} {v:.0%}" for k, v in s.items()))
    return "\n".join(lines) + "\n"


def run(args) -> int:
    try:
        _check_numbers(args)
        w, h = _size(args.image_size)
        vw, vh = _size(args.resolution)
        inp = cm.VisualInput(images=args.images, width=w, height=h, video_seconds=args.video, fps=args.fps,
                             video_width=vw, video_height=vh)
        budget = _budget(args)
        kwargs = dict(text_tokens=args.text_tokens, output_tokens=args.output_tokens, bytes_per_param=args.dtype_bytes)
        gpu = cm.multi_gpu(cm.get_gpu(args.gpu), args.gpus)
        full = cm.estimate(args.model, gpu, inp, **kwargs)
        if budget and budget.keep_visual_tokens is not None and budget.keep_visual_tokens > full.visual_tokens:
            raise ValueError(f"--budget {budget.keep_visual_tokens} keeps more visual tokens than the input has "
                             f"({full.visual_tokens:,}); write at most {full.visual_tokens} or a fraction such as 0.25")
        reduced = cm.estimate(args.model, gpu, inp, budget=budget, **kwargs) if budget else None
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    for warning in cm.fit_warnings(reduced or full):
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        def d(b: cm.Breakdown) -> dict:
            return {"model": b.model.id, "gpu": b.gpu.id, "gpus": args.gpus, "warnings": cm.fit_warnings(b),
                    "weight_bytes": cm.weight_bytes(b.model, b.bytes_per_param), "visual_tokens": b.visual_tokens, "text_tokens": b.text_tokens,
                    "output_tokens": b.output_tokens, "ttft_s": b.ttft_s, "tpot_s": b.tpot_s,
                    "kv_bytes_after_prefill": b.kv_bytes_after_prefill, "kv_bytes_final": b.kv_bytes_final,
                    "stages": {s.name: {"flops": s.flops, "bytes": s.bytes, "intensity": s.intensity, "bound": s.bound,
                                        "time_s": s.time_s} for s in (b.encoding, b.prefilling, b.decoding)}}
        out = {"full": d(full)}
        if reduced:
            out["budget"] = d(reduced)
            out["savings"] = cm.savings(full, reduced)
        print(json.dumps(out, indent=2))
        return 0
    sys.stdout.write(format_breakdown(full))
    if reduced:
        sys.stdout.write("\nwith the budget:\n" + format_breakdown(reduced, full))
    return 0

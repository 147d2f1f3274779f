"""Run one request with one method (or `none`) and print the answer and its stats."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from lvlm_atlas.cli._common import add_model_options, parse_budget, parse_params


def add_arguments(parser) -> None:
    parser.add_argument("method", help="registered method name (see `atlas list`), or `none`")
    parser.add_argument("--model", default="tiny-llava", help="preset (tiny-llava, llava-1.5-7b@random, ...) or hub id")
    parser.add_argument("--image", default=None, help="path of the input image (or give --video)")
    parser.add_argument("--video", default=None, help="path of an input video (Qwen2-VL family; needs PyAV)")
    parser.add_argument("--frames", type=int, default=8, help="video frames sampled uniformly (default 8)")
    parser.add_argument("--prompt", required=True, help="the question / instruction")
    parser.add_argument("--budget", default=None, help="visual tokens kept (e.g. 64) or a fraction (e.g. 0.25)")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="method parameter (repeatable)")
    parser.add_argument("--compare", action="store_true", help="also run the unmodified model and report agreement")
    parser.add_argument("--json", action="store_true", help="print the stats as JSON")
    add_model_options(parser)


def _fmt_ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def run(args) -> int:
    import argparse

    from lvlm_atlas.cli._checks import UsageError, check_budget, check_image, check_method, check_device, \
        check_model, check_visual_budget, fail, preset_visual_tokens

    # every user error is found here, before the model loads
    video = getattr(args, "video", None)
    try:
        if (args.image is None) == (video is None):
            raise UsageError("give exactly one of --image FILE and --video FILE")
        if video is None:
            check_image(args.image)
        elif not Path(video).is_file():
            raise UsageError(f"--video {video}: no such file; write the path of a video file (e.g. MP4)")
        if args.frames < 1:
            raise UsageError(f"--frames {args.frames}: write 1 or more")
        check_device(args.device, args.dtype)
        try:
            params = parse_params(args.param)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{exc}, e.g. --param k=3") from None
        budget = check_budget(args.budget)
        if budget is not None:
            if args.method == "none":
                raise UsageError("--budget needs a method; write a method name (see `atlas list`) instead of none")
            params["budget"] = budget
        method = check_method(args.method, params) if args.method != "none" else None
        if method is not None and getattr(type(method), "needs_video", False) and video is None:
            raise UsageError(f"{args.method} needs video input: give --video FILE (a Qwen2-VL / Qwen2.5-VL model)")
        if args.method == "none" and params:
            raise UsageError("--param needs a method; write a method name (see `atlas list`) instead of none")
        check_model(args.model)
        check_visual_budget(budget, preset_visual_tokens(args.model), args.model)   # presets: before loading
    except UsageError as exc:
        return fail(exc)

    from PIL import Image

    from lvlm_atlas.methods import harness, presets

    bundle = presets.load(args.model, device=args.device, dtype=args.dtype, attn=args.attn)
    if video:
        from lvlm_atlas.methods import video as video_io

        try:
            inputs = video_io.video_inputs(bundle, video_io.read_frames(Path(video), args.frames), args.prompt)
        except (NotImplementedError, RuntimeError, ValueError) as exc:
            return fail(UsageError(f"--video: {' '.join(str(exc).split())}"))
    else:
        with Image.open(args.image) as im:
            inputs = bundle.inputs(im.convert("RGB"), args.prompt)
    vis_ids = [bundle.model.config.image_token_id] + ([bundle.model.config.video_token_id] if video else [])
    n_vis = int(sum((inputs["input_ids"] == t).sum() for t in vis_ids))
    try:
        check_visual_budget(budget, n_vis, args.model)
    except UsageError as exc:
        return fail(exc)
    base = None
    if args.compare and method is not None:
        base = harness.greedy_generate(bundle.model, inputs, args.max_new_tokens, bundle.eos_token_id, args.device)
    ctx = method.apply(bundle.model) if method is not None else contextlib.nullcontext()
    try:
        session = ctx.__enter__()
    except NotImplementedError as exc:      # the method does not support this model family
        return fail(exc)
    with contextlib.ExitStack() as stack:
        stack.push(ctx)
        res = harness.generate(bundle.model, inputs, args.max_new_tokens, bundle.eos_token_id, args.device,
                               method=method, session=session, decode=bundle.decode)
    stats = session.last if session is not None else None
    out = {
        "answer": bundle.decode(res.tokens),
        "method": args.method, "params": {k: v for k, v in (method.params() if method else {}).items()},
        "model": args.model, "attention_backend": bundle.attn_implementation, "device": args.device,
        "visual_tokens_before": stats.visual_before if stats else n_vis,
        "visual_tokens_after": stats.visual_after if stats else n_vis,
        "ttft_ms": res.ttft_s * 1000, "tpot_ms": None if res.tpot_s is None else res.tpot_s * 1000,
        "prefill_ms": res.prefill_llm_s * 1000,
        "method_overhead_ms": (stats.method_overhead_s * 1000) if stats else 0.0,
        "peak_memory_bytes": res.peak_memory_bytes, "kv_cache_bytes": res.kv_cache_bytes,
    }
    if base is not None:
        out.update(harness.agreement(base, res))
    spec = res.extra.get("speculative")
    if spec is not None:
        out["speculative"] = spec
    report = getattr(method, "report", None) or None   # per-request figures a method reports (e.g. tome)
    if report is not None:
        out["method_report"] = report
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"answer: {out['answer']!r}")
    print(f"method: {args.method} {out['params']}")
    print(f"model: {args.model} (attention: {bundle.attn_implementation}, device: {args.device})")
    print(f"visual tokens: {out['visual_tokens_before']} -> {out['visual_tokens_after']}")
    print(f"TTFT: {_fmt_ms(res.ttft_s)}  TPOT: {_fmt_ms(res.tpot_s)}  LLM prefill: {_fmt_ms(res.prefill_llm_s)}  "
          f"method overhead: {out['method_overhead_ms']:.2f} ms")
    print(f"peak memory: {res.peak_memory_bytes / 2**20:.1f} MiB  KV cache: {res.kv_cache_bytes / 2**20:.2f} MiB")
    if spec is not None:
        print(_spec_line(spec))
    if report is not None:
        print("method report: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in report.items()))
    if base is not None:
        print(f"agreement with the unmodified model: greedy match {out['greedy_match']:.3f}, "
              f"first-token KL {out['first_token_kl']:.4g}")
    return 0


def _spec_line(spec: dict) -> str:
    """One line for a speculative-decoding run (decode-stage methods)."""
    def num(key, fmt):
        v = spec.get(key)
        return "-" if v is None else format(v, fmt)

    return (f"speculative: mean accepted length {num('mean_accepted_length', '.2f')} over {spec['rounds']} rounds, "
            f"draft saw {spec['draft_visual_tokens']}/{spec['target_visual_tokens']} visual tokens, "
            f"draft {num('draft_ms', '.1f')} ms, verify {num('verify_ms', '.1f')} ms, "
            f"speedup vs greedy {num('speedup', '.2f')}x, token agreement {num('token_agreement', '.3f')}")

"""The Cost model page: roofline numbers for the catalogued models and one roofline plot per GPU.

All numbers come from `methods.costmodel` (pure Python, no torch) and catalog/models.yaml,
catalog/gpus.yaml; the plots are SVG generated at build time.
"""
from __future__ import annotations

import math

from lvlm_atlas import costmodel as cm

from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import code, esc, front_matter_title
from lvlm_atlas.site.registry import register_page_builder

# Representative inputs for the model table (batch 1, BF16).
SCENARIOS = [
    ("1 image 672x672, 64 text, 128 out", cm.VisualInput(images=1, width=672, height=672), 64, 128),
    ("20 images 1280x1280, 64 text, 128 out", cm.VisualInput(images=20, width=1280, height=1280), 64, 128),
    ("5 s 720p video at 2 fps, 64 text, 128 out", cm.VisualInput(video_seconds=5, fps=2, video_width=1280, video_height=720), 64, 128),
]
STAGE_COLOURS = {"encoding": "#1f77b4", "prefilling": "#ff7f0e", "decoding": "#2ca02c"}


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.1f} {prefix}{unit}"
    return f"{x:.1f} {unit}"


def roofline_svg(gpu: cm.GPUSpec, points: list[tuple[str, str, float]], width: int = 640, height: int = 360) -> str:
    """Log-log roofline of `gpu` with labelled operating points (label, stage, intensity)."""
    left, right, top, bottom = 70, 20, 30, 50
    x0, x1 = -1.0, 4.0          # log10 intensity range: 0.1 .. 10^4 FLOPs/byte
    y_max = math.log10(gpu.peak_flops) + 0.3
    y_min = y_max - 5

    def px(i: float) -> float:
        return left + (math.log10(i) - x0) / (x1 - x0) * (width - left - right)

    def py(f: float) -> float:
        return top + (y_max - math.log10(f)) / (y_max - y_min) * (height - top - bottom)

    def attainable(i: float) -> float:
        return min(gpu.peak_flops, i * gpu.bandwidth)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="atlas-roofline" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="Roofline of {esc(gpu.label)}">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    for e in range(int(x0), int(x1) + 1):
        x = px(10.0 ** e)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" font-size="11" text-anchor="middle">{10.0 ** e:g}</text>')
    for e in range(math.ceil(y_min), math.floor(y_max) + 1):
        y = py(10.0 ** e)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{_si(10.0 ** e, "")}</text>')
    steps = [10 ** (x0 + k * (x1 - x0) / 200) for k in range(201)]
    path = " ".join(f"{'M' if k == 0 else 'L'}{px(i):.1f},{py(attainable(i)):.1f}" for k, i in enumerate(steps))
    parts.append(f'<path d="{path}" fill="none" stroke="#333" stroke-width="2"/>')
    ridge = gpu.ridge
    parts.append(f'<line x1="{px(ridge):.1f}" y1="{top}" x2="{px(ridge):.1f}" y2="{height - bottom}" stroke="#999" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{px(ridge) + 4:.1f}" y="{top + 12}" font-size="11">ridge {ridge:.0f} FLOPs/B</text>')
    for k, (label, stage, intensity) in enumerate(points):
        i = min(max(intensity, 10 ** x0), 10 ** x1)
        x, y = px(i), py(attainable(i))
        colour = STAGE_COLOURS.get(stage, "#555")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}"><title>{esc(label)}: {intensity:.1f} FLOPs/B</title></circle>')
        parts.append(f'<text x="{x + 7:.1f}" y="{y + 4 + 12 * (k % 3) - 12:.1f}" font-size="10" fill="{colour}">{esc(label)}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 10}" font-size="12" text-anchor="middle">'
                 'arithmetic intensity (FLOPs/byte)</text>')
    parts.append(f'<text x="14" y="{(top + height - bottom) / 2:.0f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(top + height - bottom) / 2:.0f})">attainable FLOP/s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _model_rows(gpu: cm.GPUSpec) -> list[str]:
    rows = ["| Model | Input | Visual tokens | KV cache | TTFT bound | TPOT bound | Encoding / prefill / decode intensity |",
            "|---|---|---:|---:|---:|---:|---|"]
    for model in cm.models().values():
        for label, inp, text, out in SCENARIOS:
            b = cm.estimate(model, gpu, inp, text_tokens=text, output_tokens=out)
            rows.append(
                f"| {esc(model.label)} | {esc(label)} | {b.visual_tokens:,} | {_si(b.kv_bytes_final, 'B')} | "
                f"{b.ttft_s * 1e3:,.1f} ms | {b.tpot_s * 1e3:,.2f} ms | "
                f"{b.encoding.intensity:,.0f} / {b.prefilling.intensity:,.0f} / {b.decoding.intensity:,.1f} |")
    return rows


def cost_model_page(ctx: RenderContext) -> str:
    lines = ["---", front_matter_title("Cost model"), "---", "", "# Cost model of LVLM inference", "",
             "Lower bounds on time from the roofline model, following the ACL 2026 survey's equations: encoding is "
             "compute-bound (eq. 3), prefilling sits near the ridge point (eq. 4), decoding is memory-bound and re-reads "
             "the weights and the whole KV cache every step (eq. 5-6). Numbers assume batch size 1, BF16 weights and "
             "cache, and fused attention. Compute them for your own input with "
             "`atlas cost --model qwen2.5-vl-72b --images 20 --gpu a100` "
             "(add `--video SECONDS --fps F --resolution WxH`, `--budget 144` or `--kv-budget 0.1`).", "",
             "## Accelerators", "", "| GPU | Peak dense FP16/BF16 | Memory bandwidth | Ridge point |", "|---|---:|---:|---:|"]
    for gpu in cm.gpus().values():
        lines.append(f"| {esc(gpu.label)} | {_si(gpu.peak_flops, 'FLOP/s')} | {_si(gpu.bandwidth, 'B/s')} | "
                     f"{gpu.ridge:.0f} FLOPs/B |")
    lines += ["", "## Models", "", "| Model | Language model | Layers | Hidden | KV heads / heads | Visual tokenizer | Parameters |",
              "|---|---|---:|---:|---:|---|---:|"]
    for m in cm.models().values():
        lines.append(f"| {esc(m.label)} | {code(m.hub_id)} | {m.llm.layers} | {m.llm.hidden} | {m.llm.kv_heads} / {m.llm.heads} | "
                     f"{esc(m.vision.tokenizer)} | {m.params() / 1e9:.1f} B |")
    for gpu in cm.gpus().values():
        lines += ["", f"## {esc(gpu.label)}", ""]
        points = []
        for mid in ("llava-1.5-7b", "qwen2.5-vl-7b", "qwen2.5-vl-72b"):
            if mid not in cm.models():
                continue
            m = cm.models()[mid]
            b = cm.estimate(m, gpu, SCENARIOS[0][1], text_tokens=64, output_tokens=128)
            points += [(f"{m.label} {s.name}", s.name, s.intensity) for s in (b.encoding, b.prefilling, b.decoding)]
        lines += [f'<div class="atlas-figure">{roofline_svg(gpu, points)}</div>', ""]
        lines += _model_rows(gpu)
    lines.append("")
    return "\n".join(lines)


@register_page_builder
def cost_model_pages(ctx: RenderContext):
    yield "cost-model.md", cost_model_page(ctx.at("cost-model.md"))


# ---------------------------------------------------------------- method cards

TOKEN_STAGES = {"vision", "pre_llm", "in_llm"}


def theoretical_savings(card_data: dict, cost_model_link: str = "cost-model.md") -> str | None:
    """Markdown table: what the cost model says the method's budgets save (None for other stages)."""
    stage = card_data.get("stage")
    params = {p.get("name"): p.get("default") for p in card_data.get("parameters") or [] if isinstance(p, dict)}
    if stage in TOKEN_STAGES:
        model, gpu = cm.get_model("llava-1.5-7b"), cm.get_gpu("a100")
        inp = cm.VisualInput(images=1)
        after = int(params.get("k") or params.get("layer") or 2) if stage == "in_llm" else 0
        full = cm.estimate(model, gpu, inp, text_tokens=64, output_tokens=128)
        rows = ["| Visual tokens kept (of 576) | Prefill FLOPs saved | TTFT bound saved | TPOT bound saved | KV cache saved |",
                "|---:|---:|---:|---:|---:|"]
        for keep in (64, 128, 192):
            b = cm.estimate(model, gpu, inp, text_tokens=64, output_tokens=128,
                            budget=cm.Budget(keep_visual_tokens=keep, after_layer=after))
            s = cm.savings(full, b)
            rows.append(f"| {keep} | {s['prefill_flops']:.0%} | {s['ttft']:.0%} | {s['tpot']:.0%} | {s['kv_bytes']:.0%} |")
        where = (f"tokens dropped after decoder layer {after}" if after else "tokens dropped before the language model")
        return (f"Roofline estimate for LLaVA-1.5-7B on an A100 (one image, 64 text tokens, 128 output tokens, BF16; "
                f"{where}). Compare with the measured numbers below; see the [cost model]({cost_model_link}) page.\n\n"
                + "\n".join(rows) + "\n")
    if stage in ("kv", "cache", "decode"):
        gpu = cm.get_gpu("a100")
        cases = [("LLaVA-1.5-7B, 1 image", "llava-1.5-7b", cm.VisualInput(images=1)),
                 ("Qwen2.5-VL-7B, 20 images 1280x1280", "qwen2.5-vl-7b", cm.VisualInput(images=20, width=1280, height=1280))]
        rows = ["| Request | KV kept | KV cache saved | TPOT bound saved |", "|---|---:|---:|---:|"]
        for label, mid, inp in cases:
            full = cm.estimate(mid, gpu, inp, text_tokens=64, output_tokens=128)
            for frac in (0.1, 0.25, 0.5):
                s = cm.savings(full, cm.estimate(mid, gpu, inp, text_tokens=64, output_tokens=128, budget=cm.Budget(kv_fraction=frac)))
                rows.append(f"| {label} | {frac:.0%} | {s['kv_bytes']:.0%} | {s['tpot']:.0%} |")
        return ("Roofline estimate on an A100 (64 text tokens, 128 output tokens, BF16): decoding re-reads the weights "
                "and the KV cache every step, so the TPOT saving grows with the share of the cache in the bytes moved. "
                f"See the [cost model]({cost_model_link}) page.\n\n" + "\n".join(rows) + "\n")
    return None

"""Figures generated at build time as inline-able SVG: the encoding/prefilling/decoding pipeline and
the papers-per-year bar chart. Only numbers and our own labels go into them; any text is escaped."""
from __future__ import annotations

from html import escape


def _t(text: object) -> str:
    return escape(str(text), quote=True).replace("{", "&#123;").replace("}", "&#125;")


def pipeline(stage_counts: dict[str, int]) -> str:
    """The three-stage LVLM inference pipeline, with the number of catalog papers per stage."""
    boxes = [
        ("encoding", "Encoding", ["image / video", "→ vision encoder", "→ adapter → visual tokens"], "#3f6fb5"),
        ("prefilling", "Prefilling", ["one parallel pass over", "visual + text tokens", "→ first token, KV cache"], "#8a4fb0"),
        ("decoding", "Decoding", ["token by token,", "each step re-reads", "weights + KV cache"], "#b5533f"),
    ]
    bound = {"encoding": "compute-bound", "prefilling": "near the ridge point", "decoding": "memory-bandwidth-bound"}
    w, h, bw, bh, gap, top = 760, 210, 210, 120, 45, 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" role="img" '
             f'aria-labelledby="atlas-pipeline-title" font-family="sans-serif">',
             '<title id="atlas-pipeline-title">LVLM inference pipeline: encoding, prefilling, decoding</title>',
             '<defs><marker id="atlas-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>']
    for i, (sid, label, lines, color) in enumerate(boxes):
        x = 20 + i * (bw + gap)
        parts.append(f'<rect x="{x}" y="{top}" width="{bw}" height="{bh}" rx="10" fill="{color}" opacity="0.12" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{x + bw / 2}" y="{top + 26}" text-anchor="middle" font-size="18" font-weight="bold" fill="{color}">{_t(label)}</text>')
        for j, line in enumerate(lines):
            parts.append(f'<text x="{x + bw / 2}" y="{top + 52 + j * 18}" text-anchor="middle" font-size="13" fill="currentColor">{_t(line)}</text>')
        parts.append(f'<text x="{x + bw / 2}" y="{top + bh + 22}" text-anchor="middle" font-size="12" font-style="italic" fill="#666">{_t(bound[sid])}</text>')
        n = int(stage_counts.get(sid, 0))
        parts.append(f'<text x="{x + bw / 2}" y="{top + bh + 44}" text-anchor="middle" font-size="13" font-weight="bold" fill="{color}">{n} papers</text>')
        if i < len(boxes) - 1:
            parts.append(f'<line x1="{x + bw + 4}" y1="{top + bh / 2}" x2="{x + bw + gap - 4}" y2="{top + bh / 2}" stroke="#666" stroke-width="2" marker-end="url(#atlas-arrow)"/>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(counts: list[tuple[str, int]], title: str) -> str:
    """A vertical bar chart (one bar per label), standalone SVG."""
    n = max(len(counts), 1)
    bar, gap, left, bottom, top, height = 34, 12, 40, 40, 40, 200
    width = left + n * (bar + gap) + 20
    peak = max((c for _, c in counts), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {top + height + bottom}" role="img" '
             f'aria-label="{_t(title)}" font-family="sans-serif" font-size="12">', f"<title>{_t(title)}</title>",
             f'<line x1="{left - 4}" y1="{top + height}" x2="{width - 10}" y2="{top + height}" stroke="#888"/>']
    for i, (label, c) in enumerate(counts):
        x = left + i * (bar + gap)
        hgt = round(height * c / peak, 1)
        y = top + height - hgt
        parts.append(f'<rect x="{x}" y="{y}" width="{bar}" height="{hgt}" fill="#4f6bb5"><title>{_t(label)}: {c}</title></rect>')
        parts.append(f'<text x="{x + bar / 2}" y="{y - 5}" text-anchor="middle" fill="#333">{c}</text>')
        parts.append(f'<text x="{x + bar / 2}" y="{top + height + 16}" text-anchor="middle" fill="#333">{_t(label)}</text>')
    parts.append(f'<text x="{left}" y="20" font-size="14" font-weight="bold" fill="#333">{_t(title)}</text>')
    parts.append("</svg>")
    return "".join(parts) + "\n"

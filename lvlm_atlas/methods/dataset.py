"""A small offline VQA dataset drawn with PIL: colored shapes with questions that have one-word answers.

Each JSONL line: {"id", "image" (path relative to the JSONL file), "question", "answers": [...]}.
Deterministic for a given seed, so results are comparable across machines.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

COLORS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (240, 210, 30),
          "purple": (140, 50, 170), "orange": (250, 140, 20)}
SHAPES = ["circle", "square", "triangle"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five"]


def _draw(draw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def make_item(rng: random.Random, idx: int, size: int = 336):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (245, 245, 240))
    draw = ImageDraw.Draw(img)
    kind = idx % 3
    if kind == 2:   # counting
        shape = rng.choice(SHAPES)
        color = rng.choice(list(COLORS))
        n = rng.randint(1, 5)
        cells = rng.sample(range(9), n)
        for c in cells:
            cx, cy = (c % 3) * size // 3, (c // 3) * size // 3
            pad = size // 12
            _draw(draw, shape, (cx + pad, cy + pad, cx + size // 3 - pad, cy + size // 3 - pad), COLORS[color])
        q = f"How many {shape}s are in the image? Answer with one number."
        return img, q, [str(n), NUMBER_WORDS[n]]
    shape = rng.choice(SHAPES)
    color = rng.choice(list(COLORS))
    s = rng.randint(size // 4, size // 2)
    x, y = rng.randint(0, size - s), rng.randint(0, size - s)
    _draw(draw, shape, (x, y, x + s, y + s), COLORS[color])
    if kind == 0:
        return img, f"What color is the {shape}? Answer with one word.", [color]
    return img, "Which shape is in the image: circle, square or triangle? Answer with one word.", [shape]


def generate(out_dir: str | Path, n: int = 24, seed: int = 0, size: int = 336) -> Path:
    """Write n images and `data.jsonl` into out_dir (atomically; reruns give identical files)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        img, question, answers = make_item(rng, i, size)
        rel = f"images/{i:04d}.png"
        img.save(out / rel)
        lines.append(json.dumps({"id": f"shapes-{i:04d}", "image": rel, "question": question, "answers": answers}))
    target = out / "data.jsonl"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".data.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, target)
    return target


def load(path: str | Path) -> list[dict]:
    """Read a JSONL dataset; image paths are resolved relative to the file. Raises ValueError on bad lines."""
    path = Path(path)
    items = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        missing = [k for k in ("image", "question") if k not in rec]
        if missing:
            raise ValueError(f"{path}:{lineno}: missing key(s) {', '.join(missing)}")
        img = Path(rec["image"])
        rec["image"] = str(img if img.is_absolute() else path.parent / img)
        rec.setdefault("answers", [])
        rec.setdefault("id", f"{path.stem}-{lineno}")
        items.append(rec)
    if not items:
        raise ValueError(f"{path}: no items")
    return items


def normalize(text: str) -> str:
    import re

    text = text.strip().splitlines()[0] if text.strip() else ""
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def exact_match(prediction: str, answers: list[str]) -> bool:
    p = normalize(prediction)
    return any(p == normalize(a) for a in answers)

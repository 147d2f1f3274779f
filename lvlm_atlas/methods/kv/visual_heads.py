"""SparseMM's offline probe for visual heads, and the score files it writes.

The probe (SparseMM, Wang et al. 2025, Sec. "chasing visual heads") decodes OCR images greedily. For
every generated token that belongs to exactly one OCR chunk (text + bounding box), it looks at the
query that produced the token in every layer and query head: if that head's most-attended key (top-1)
is one of the image tokens inside the chunk's box, the head scores ``1 / (number of image tokens in
the box)``. Summed over tokens and images, heads with high scores are the visual heads.

Here the attention top-1 is recomputed from the attention module's own q projection and the keys in
the cache (a forward hook per layer; the model runs on SDPA), so no ``output_attentions`` is needed.

Score files are JSON: ``{"schema": 1, "model": ..., "samples": n, "scores": [[per query head] per
layer]}``, written atomically.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn
from lvlm_atlas.methods.transformers_adapter import DynamicCache, cache_kwargs, cache_of

from lvlm_atlas.methods.kv.controller import language_model_of


@dataclass
class VisualHeadScores:
    scores: torch.Tensor          # (layers, query heads) float64, accumulated hit scores
    model: str = ""
    samples: int = 0

    def kv_head_scores(self, num_kv_heads: int) -> torch.Tensor:
        """``(layers, kv heads)``: scores of the query heads of each GQA group summed (they share a cache)."""
        L, Hq = self.scores.shape
        if Hq % num_kv_heads:
            raise ValueError(f"{Hq} query heads in the score file do not split into {num_kv_heads} KV heads")
        return self.scores.reshape(L, num_kv_heads, Hq // num_kv_heads).sum(-1)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        data = {"schema": 1, "model": self.model, "samples": self.samples,
                "scores": [[float(x) for x in row] for row in self.scores.tolist()]}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | Path) -> "VisualHeadScores":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no visual-head score file at {path}; write one with "
                                    "methods.kv.visual_heads.probe_visual_heads(...).save(path)") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from None
        rows = data.get("scores") if isinstance(data, dict) else None
        if data.get("schema") != 1 or not rows or not all(isinstance(r, list) and len(r) == len(rows[0]) for r in rows):
            raise ValueError(f"{path}: expected schema 1 with 'scores' as a rectangular list of per-layer lists")
        scores = torch.tensor(rows, dtype=torch.float64)
        if not torch.isfinite(scores).all() or (scores < 0).any():
            raise ValueError(f"{path}: visual-head scores must be finite and non-negative")
        return cls(scores, str(data.get("model", "")), int(data.get("samples", 0)))

    def check_shape(self, num_layers: int, num_q_heads: int) -> None:
        if tuple(self.scores.shape) != (num_layers, num_q_heads):
            raise ValueError(f"visual-head scores are for {tuple(self.scores.shape)} (layers, heads), but the model "
                             f"has {num_layers} layers x {num_q_heads} query heads: probe this model")


class _TopKeyCapture:
    """Per layer, the index of the most-attended key of every query head for the last query row."""

    def __init__(self, model: nn.Module):
        self.lm = language_model_of(model)
        self.top: dict[int, torch.Tensor] = {}
        self._handles = [l.self_attn.register_forward_hook(self._hook, with_kwargs=True) for l in self.lm.layers]

    def close(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def _hook(self, module, args, kwargs, output):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        pkv = cache_of(kwargs)
        cos, sin = kwargs["position_embeddings"]
        keys = pkv.layers[module.layer_idx].keys                      # (B, Hkv, N, D), rotary applied
        hd = module.head_dim
        q = module.q_proj(hidden[:, -1:]).view(hidden.shape[0], 1, -1, hd).transpose(1, 2)
        half = hd // 2
        q = q * cos[:, -1:].unsqueeze(1) + torch.cat((-q[..., half:], q[..., :half]), -1) * sin[:, -1:].unsqueeze(1)
        k = keys.repeat_interleave(q.shape[1] // keys.shape[1], dim=1)
        logits = torch.matmul(q.float(), k.float().transpose(-1, -2))[:, :, 0]   # (B, Hq, N)
        self.top[module.layer_idx] = logits.argmax(dim=-1)[0]               # softmax keeps the argmax
        return None


@torch.no_grad()
def probe_visual_heads(model: nn.Module, requests: Iterable[tuple[dict, Callable[[int], torch.Tensor | None]]],
                       max_new_tokens: int = 64, model_name: str = "",
                       into: VisualHeadScores | None = None) -> VisualHeadScores:
    """Run the probe over ``requests``: pairs of (model inputs with ``input_ids``, ``region_of``).

    ``region_of(token_id)`` returns the prompt positions of the image tokens inside the box of the
    single OCR chunk that contains the generated token, or None (no chunk, or several). Decoding is
    greedy with the model's own cache; ``eos_token_id`` of the generation config stops a request.
    """
    lm = language_model_of(model)
    cfg = lm.config
    L, Hq = cfg.num_hidden_layers, cfg.num_attention_heads
    out = into or VisualHeadScores(torch.zeros(L, Hq, dtype=torch.float64), model_name, 0)
    out.check_shape(L, Hq)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    capture = _TopKeyCapture(model)
    try:
        for inputs, region_of in requests:
            step_inputs = dict(inputs)
            cache = DynamicCache()
            attn = inputs.get("attention_mask")
            for _ in range(max_new_tokens):
                res = model(**step_inputs, **cache_kwargs(model, cache), use_cache=True)
                token = int(res.logits[0, -1].argmax())
                region = region_of(token)
                if region is not None and len(region):
                    region = torch.as_tensor(region).to(capture.top[0].device)
                    w = 1.0 / region.numel()
                    for layer, top in capture.top.items():
                        hit = torch.isin(top, region)
                        out.scores[layer] += hit.double().cpu() * w
                if token in eos:
                    break
                nxt = torch.tensor([[token]], device=inputs["input_ids"].device)
                if attn is not None:
                    attn = torch.cat([attn, attn.new_ones(1, 1)], dim=1)
                step_inputs = {"input_ids": nxt, "attention_mask": attn} if attn is not None else {"input_ids": nxt}
            out.samples += 1
    finally:
        capture.close()
    return out


def ocr_token_regions(decode: Callable[[int], str], chunks: list[tuple[str, tuple[float, float, float, float]]],
                      image_size: tuple[int, int], grid: tuple[int, int],
                      visual_positions: torch.Tensor) -> Callable[[int], torch.Tensor | None]:
    """Build ``region_of`` for one OCR image, as the SparseMM probe does.

    ``chunks``: (text, (x0, y0, x1, y1) in pixels of the image as given); ``image_size`` (width, height);
    ``grid`` (rows, cols) of image tokens as the LLM sees them, in row-major order;
    ``visual_positions`` the prompt positions of those image tokens. A generated token maps to a region
    only if its text occurs in exactly one chunk.
    """
    W, H = image_size
    rows, cols = grid
    if visual_positions.numel() != rows * cols:
        raise ValueError(f"{visual_positions.numel()} image tokens do not form a {rows}x{cols} grid")
    cell_w, cell_h = W / cols, H / rows
    boxes = []
    for text, (x0, y0, x1, y1) in chunks:
        c0, c1 = int(x0 // cell_w), min(cols - 1, int(math.floor(x1 / cell_w)))
        r0, r1 = int(y0 // cell_h), min(rows - 1, int(math.floor(y1 / cell_h)))
        flat = torch.tensor([r * cols + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)], dtype=torch.long)
        boxes.append((text, visual_positions[flat]))

    def region_of(token_id: int) -> torch.Tensor | None:
        piece = decode(token_id)
        hits = [pos for text, pos in boxes if piece in text]
        return hits[0] if len(hits) == 1 else None

    return region_of

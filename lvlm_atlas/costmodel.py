"""A roofline cost model of LVLM inference (pure Python: no torch).

It follows the ACL 2026 survey's equations (arXiv 2604.05546, section 2.2 and Appendix E):

* eq. 2  tau_total = tau_ENC + tau_PFL + N_o * tau_DEC
* eq. 3  tau_ENC ~ FLOPs_ENC / pi_peak                       (encoding is compute-bound)
* eq. 4  tau_PFL ~ max(FLOPs_PFL / pi_peak, bytes_PFL / beta) (mixed regime)
* eq. 5  |KV|_i = 2 * L * (N_v + N_t + i) * D_L * r_kv * P
* eq. 6  tau_DEC^(i) ~ (|psi| + |KV|_i) / beta               (decoding is memory-bound)

Architectures come from catalog/models.yaml and accelerators from catalog/gpus.yaml. Every number is
a lower bound on time (a roofline): measured runs can only be slower. FLOPs count a multiply-add as 2.
Assumptions, stated once:

* weights, activations and KV cache in the same dtype (`bytes_per_param`, default 2 for FP16/BF16);
* prefill bytes = weights read once + KV cache written once + activations read/written once per
  linear layer (fused attention, so the N x N score matrix never reaches memory);
* decode step bytes = weights + the KV cache read once (eq. 6); activations are negligible at batch 1;
* causal attention computes N(N+1)/2 query-key pairs; an encoder attends over all N^2 pairs (or
  within windows where the model uses windowed attention);
* the language-model head runs for the last prompt token in prefill and for every decoded token.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lvlm_atlas import paths

CATALOG = paths.CATALOG


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class LLMSpec:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    mlp_matrices: int = 3
    vocab: int = 32000
    cross_attention_layers: int = 0

    @property
    def r_kv(self) -> float:
        """Ratio of KV heads to query heads (1 for MHA, < 1 for GQA/MQA)."""
        return self.kv_heads / self.heads

    def layer_params(self) -> int:
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        return q + kv + o + self.mlp_matrices * self.hidden * self.ffn

    def params(self) -> int:
        """Weights of the decoder stack plus embeddings and LM head (untied)."""
        return self.layers * self.layer_params() + 2 * self.vocab * self.hidden


@dataclass(frozen=True)
class VisionSpec:
    tokenizer: str
    layers: int
    hidden: int
    heads: int
    ffn: int
    patch: int
    mlp_matrices: int = 2
    image_size: int = 0
    cls_token: bool = False
    merge: int = 1
    temporal_patch: int = 1
    min_pixels: int = 0
    max_pixels: int = 0
    window: int = 0
    full_attention_layers: int = 0
    max_tiles: int = 1
    tokens_per_tile: int = 0
    thumbnail: bool = False
    grid_pinpoints: tuple = ()
    projector: tuple = ()

    def layer_params(self) -> int:
        return 4 * self.hidden * self.hidden + self.mlp_matrices * self.hidden * self.ffn

    def params(self) -> int:
        proj = sum(a * b for a, b in self.projector)
        return self.layers * self.layer_params() + proj + 3 * self.patch * self.patch * self.hidden * self.temporal_patch


@dataclass(frozen=True)
class ModelSpec:
    id: str
    label: str
    hub_id: str
    llm: LLMSpec
    vision: VisionSpec
    max_context: int = 0          # context length of the language model in tokens (0: unknown)

    def params(self) -> int:
        return self.llm.params() + self.vision.params()


@dataclass(frozen=True)
class GPUSpec:
    id: str
    label: str
    peak_flops: float
    bandwidth: float
    memory: float

    @property
    def ridge(self) -> float:
        """Ridge point I_ridge = pi_peak / beta_mem in FLOPs/byte (eq. 10)."""
        return self.peak_flops / self.bandwidth


def _load_yaml(name: str) -> list[dict]:
    return yaml.safe_load((CATALOG / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def models() -> dict[str, ModelSpec]:
    out = {}
    for raw in _load_yaml("models.yaml"):
        vision = dict(raw["vision"])
        vision["grid_pinpoints"] = tuple(tuple(p) for p in vision.get("grid_pinpoints", ()))
        vision["projector"] = tuple(tuple(p) for p in vision.get("projector", ()))
        out[raw["id"]] = ModelSpec(id=raw["id"], label=raw["label"], hub_id=raw["hub_id"],
                                   llm=LLMSpec(**raw["llm"]), vision=VisionSpec(**vision),
                                   max_context=int(raw.get("max_context") or 0))
    return out


@lru_cache(maxsize=None)
def gpus() -> dict[str, GPUSpec]:
    out = {}
    for g in _load_yaml("gpus.yaml"):
        # PyYAML (YAML 1.1) reads "312.0e12" as a string: convert numbers explicitly
        out[g["id"]] = GPUSpec(id=g["id"], label=g["label"], peak_flops=float(g["peak_flops"]),
                               bandwidth=float(g["bandwidth"]), memory=float(g["memory"]))
    return out


def get_model(model_id: str) -> ModelSpec:
    table = models()
    key = model_id.lower()
    if key not in table:
        raise KeyError(f"unknown model {model_id!r}; known models: {', '.join(table)} (add one to catalog/models.yaml)")
    return table[key]


def multi_gpu(gpu: GPUSpec, n: int) -> GPUSpec:
    """`n` identical GPUs as one device under ideal tensor parallelism (communication ignored):
    n times the compute, the bandwidth and the memory."""
    if n < 1:
        raise ValueError(f"--gpus must be at least 1, got {n}")
    if n == 1:
        return gpu
    return GPUSpec(id=gpu.id, label=f"{n} x {gpu.label}", peak_flops=gpu.peak_flops * n,
                   bandwidth=gpu.bandwidth * n, memory=gpu.memory * n)


def weight_bytes(model: ModelSpec, bytes_per_param: int = 2) -> float:
    return float(model.params()) * bytes_per_param


def fit_warnings(b: "Breakdown") -> list[str]:
    """Why the request would not run as estimated: memory (weights + KV cache at the last token vs the
    GPU memory) and context length (prompt + output vs the language model's context)."""
    out = []
    weights = weight_bytes(b.model, b.bytes_per_param)
    need = weights + b.kv_bytes_final
    gb = 1e9
    if weights > b.gpu.memory:
        out.append(f"does not fit: the weights alone are {weights / gb:.0f} GB and {b.gpu.label} has "
                   f"{b.gpu.memory / gb:.0f} GB; use more GPUs (--gpus N), a larger GPU or fewer bytes per weight "
                   f"(--dtype-bytes 1)")
    elif need > b.gpu.memory:
        out.append(f"does not fit: weights {weights / gb:.0f} GB + KV cache {b.kv_bytes_final / gb:.1f} GB = "
                   f"{need / gb:.0f} GB > {b.gpu.memory / gb:.0f} GB of {b.gpu.label}; reduce the input, use a "
                   f"budget (--budget/--kv-budget) or more GPUs (--gpus N)")
    ctx = (0 if b.model.vision.tokenizer == "cross_attn" else b.visual_tokens) + b.text_tokens + b.output_tokens
    if b.model.max_context and ctx > b.model.max_context:
        out.append(f"exceeds the context: {ctx:,} tokens (visual + text + output) > {b.model.max_context:,} tokens "
                   f"of {b.model.label}; use fewer or smaller images, a shorter video or a visual-token budget")
    return out


def get_gpu(gpu_id: str) -> GPUSpec:
    table = gpus()
    key = gpu_id.lower()
    if key not in table:
        raise KeyError(f"unknown GPU {gpu_id!r}; known GPUs: {', '.join(table)} (add one to catalog/gpus.yaml)")
    return table[key]


# ---------------------------------------------------------------- visual tokens


@dataclass(frozen=True)
class VisualInput:
    """What the encoder sees: `images` images of width x height, and/or a video."""
    images: int = 0
    width: int = 0
    height: int = 0
    video_seconds: float = 0.0
    fps: float = 2.0
    video_width: int = 0
    video_height: int = 0

    @property
    def video_frames(self) -> int:
        return int(math.floor(self.video_seconds * self.fps + 1e-9)) if self.video_seconds else 0


@dataclass(frozen=True)
class EncodedShape:
    """Visual tokens entering the LLM, and the encoder's work units (patch sequences) producing them."""
    visual_tokens: int
    encoder_sequences: tuple[int, ...]   # patches per encoder forward (one per image / tile / temporal clip)

    @property
    def patches(self) -> int:
        return sum(self.encoder_sequences)


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resizing: round each side to a multiple of `factor`, keep the pixel count in range."""
    if height <= 0 or width <= 0:
        raise ValueError("image height and width must be positive")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if max_pixels and h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif min_pixels and h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def _anyres_tokens(v: VisionSpec, width: int, height: int) -> tuple[int, tuple[int, ...]]:
    """LLaVA-NeXT: pick the grid resolution that keeps most of the image, crop it, unpad, add newlines."""
    best, best_fit, best_waste = None, -1, math.inf
    for gh, gw in v.grid_pinpoints:
        scale = min(gw / width, gh / height)
        eff = min(int(width * scale) * int(height * scale), width * height)
        waste = gw * gh - eff
        if eff > best_fit or (eff == best_fit and waste < best_waste):
            best, best_fit, best_waste = (gh, gw), eff, waste
    gh, gw = best
    side = v.image_size // v.patch
    rows, cols = gh // v.image_size * side, gw // v.image_size * side
    # unpad: the resized image keeps its aspect ratio inside the grid; padding rows/cols are dropped
    if width / height > cols / rows:
        rows = max(1, int(round(height * cols / width)))
    else:
        cols = max(1, int(round(width * rows / height)))
    crops = (gh // v.image_size) * (gw // v.image_size)
    seq = side * side + (1 if v.cls_token else 0)
    tokens = side * side + rows * cols + rows  # base image + unpadded grid + one newline per row
    return tokens, (seq,) * (crops + 1)


def _tiles(v: VisionSpec, width: int, height: int) -> int:
    """InternVL dynamic tiling: the tile grid (<= max_tiles) whose aspect ratio is closest to the image's."""
    aspect = width / height
    best, best_diff = (1, 1), math.inf
    for n in range(1, v.max_tiles + 1):
        for i in range(1, n + 1):
            if n % i:
                continue
            j = n // i
            diff = abs(aspect - i / j)
            if diff < best_diff or (diff == best_diff and width * height > 0.5 * v.image_size ** 2 * i * j):
                best, best_diff = (i, j), diff
    count = best[0] * best[1]
    return count + (1 if v.thumbnail and count > 1 else 0)


def encode_shape(model: ModelSpec, inp: VisualInput) -> EncodedShape:
    v = model.vision
    tokens, seqs = 0, []
    if inp.images and (inp.width <= 0 or inp.height <= 0) and v.tokenizer != "fixed":
        raise ValueError("give the image size (width x height) for models with dynamic resolution")
    for _ in range(inp.images):
        if v.tokenizer == "fixed":
            side = v.image_size // v.patch
            tokens += side * side
            seqs.append(side * side + (1 if v.cls_token else 0))
        elif v.tokenizer == "anyres":
            t, s = _anyres_tokens(v, inp.width, inp.height)
            tokens += t
            seqs += s
        elif v.tokenizer == "dynamic":
            h, w = smart_resize(inp.height, inp.width, v.patch * v.merge, v.min_pixels, v.max_pixels)
            patches = (h // v.patch) * (w // v.patch)
            tokens += patches // (v.merge * v.merge)
            seqs.append(patches)  # a still image is one temporal patch (duplicated frame)
        elif v.tokenizer == "tiles":
            n = _tiles(v, inp.width, inp.height)
            tokens += n * v.tokens_per_tile
            seqs += [(v.image_size // v.patch) ** 2] * n
        elif v.tokenizer == "cross_attn":
            n = min(v.max_tiles, max(1, math.ceil(inp.width / v.image_size) * math.ceil(inp.height / v.image_size)))
            per_tile = (v.image_size // v.patch) ** 2 + 1
            tokens += n * per_tile
            seqs += [per_tile] * n
        else:
            raise ValueError(f"unknown visual tokenizer {v.tokenizer!r}")
    frames = inp.video_frames
    if frames:
        if v.tokenizer != "dynamic":
            # frame-by-frame models encode each sampled frame as an image
            per_frame = encode_shape(model, VisualInput(images=1, width=inp.video_width, height=inp.video_height))
            tokens += frames * per_frame.visual_tokens
            seqs += list(per_frame.encoder_sequences) * frames
        else:
            h, w = smart_resize(inp.video_height, inp.video_width, v.patch * v.merge, v.min_pixels, v.max_pixels)
            groups = math.ceil(frames / v.temporal_patch)
            patches = (h // v.patch) * (w // v.patch)
            tokens += groups * patches // (v.merge * v.merge)
            seqs += [patches] * groups
    return EncodedShape(visual_tokens=tokens, encoder_sequences=tuple(seqs))


# ---------------------------------------------------------------- FLOPs and bytes


def encoder_flops(model: ModelSpec, shape: EncodedShape) -> float:
    """Vision tower + projector FLOPs (eq. 3's FLOPs_ENC)."""
    v = model.vision
    total = 0.0
    for n in shape.encoder_sequences:
        linear = 2.0 * n * v.layer_params() * v.layers
        if v.window:
            win = (v.window // v.patch) ** 2
            full = v.full_attention_layers
            attn = 4.0 * v.hidden * (full * n * n + (v.layers - full) * n * min(n, win))
        else:
            attn = 4.0 * v.hidden * n * n * v.layers
        total += linear + attn
    merged = shape.visual_tokens
    total += 2.0 * merged * sum(a * b for a, b in v.projector)
    return total


def encoder_bytes(model: ModelSpec, shape: EncodedShape, p: int = 2) -> float:
    """Weights read once per encoder forward plus activations in/out of every linear layer."""
    v = model.vision
    per_seq_act = lambda n: p * n * v.layers * (8 * v.hidden + v.mlp_matrices * (v.hidden + v.ffn))  # noqa: E731
    return sum(p * v.params() + per_seq_act(n) for n in shape.encoder_sequences)


def llm_prefill_flops(llm: LLMSpec, n: int, cross_tokens: int = 0) -> float:
    """Decoder FLOPs for a prompt of n tokens (causal attention; eq. 4's FLOPs)."""
    linear = 2.0 * n * llm.layer_params() * llm.layers
    attn = 2.0 * n * (n + 1) * llm.heads * llm.head_dim * llm.layers   # QK^T and PV over N(N+1)/2 pairs
    cross = 4.0 * n * cross_tokens * llm.heads * llm.head_dim * llm.cross_attention_layers
    head = 2.0 * llm.hidden * llm.vocab
    return linear + attn + cross + head


def kv_bytes(llm: LLMSpec, context: int, p: int = 2, cross_tokens: int = 0) -> float:
    """Eq. 5: |KV| = 2 * L * N * D_L * r_kv * P (cross-attention layers hold the visual KV separately)."""
    d_kv = llm.heads * llm.head_dim * llm.r_kv
    self_kv = 2.0 * llm.layers * context * d_kv * p
    cross_kv = 2.0 * llm.cross_attention_layers * cross_tokens * d_kv * p
    return self_kv + cross_kv


def llm_prefill_bytes(llm: LLMSpec, n: int, p: int = 2, cross_tokens: int = 0) -> float:
    activations = p * n * llm.layers * (
        2 * llm.hidden + 2 * llm.kv_heads * llm.head_dim + 2 * llm.heads * llm.head_dim  # q,k,v in/out, o in/out
        + llm.mlp_matrices * llm.hidden + llm.mlp_matrices * llm.ffn
    )
    return p * llm.params() + kv_bytes(llm, n, p, cross_tokens) + activations


def decode_step_flops(llm: LLMSpec, context: int, cross_tokens: int = 0) -> float:
    return (2.0 * llm.params() + 4.0 * context * llm.heads * llm.head_dim * llm.layers
            + 4.0 * cross_tokens * llm.heads * llm.head_dim * llm.cross_attention_layers)


def decode_step_bytes(llm: LLMSpec, context: int, p: int = 2, cross_tokens: int = 0) -> float:
    """Eq. 6's numerator: |psi| + |KV|_i."""
    return p * llm.params() + kv_bytes(llm, context, p, cross_tokens)


# ---------------------------------------------------------------- the breakdown


@dataclass(frozen=True)
class StageCost:
    name: str
    flops: float
    bytes: float
    time_s: float
    bound: str          # "compute" or "memory"

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else math.inf


def _stage(name: str, flops: float, nbytes: float, gpu: GPUSpec) -> StageCost:
    tc, tm = flops / gpu.peak_flops, nbytes / gpu.bandwidth
    return StageCost(name, flops, nbytes, max(tc, tm), "compute" if tc >= tm else "memory")


@dataclass(frozen=True)
class Budget:
    """What a method keeps: a visual-token budget (count or fraction) and/or a KV-cache fraction."""
    keep_visual_tokens: int | None = None
    keep_visual_fraction: float | None = None
    kv_fraction: float | None = None
    after_layer: int = 0   # in-LLM pruning (FastV-style): tokens are dropped after this many decoder layers

    def visual(self, n: int) -> int:
        if self.keep_visual_tokens is not None:
            return min(n, max(0, self.keep_visual_tokens))
        if self.keep_visual_fraction is not None:
            return int(round(n * self.keep_visual_fraction))
        return n


@dataclass(frozen=True)
class Breakdown:
    model: ModelSpec
    gpu: GPUSpec
    visual_tokens: int
    text_tokens: int
    output_tokens: int
    bytes_per_param: int
    encoding: StageCost
    prefilling: StageCost
    decoding: StageCost                 # all output tokens together
    kv_bytes_after_prefill: float
    kv_bytes_final: float
    visual_kv_share: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ttft_s(self) -> float:
        return self.encoding.time_s + self.prefilling.time_s

    @property
    def tpot_s(self) -> float:
        return self.decoding.time_s / max(1, self.output_tokens)

    @property
    def total_s(self) -> float:
        return self.ttft_s + self.decoding.time_s


def estimate(model: ModelSpec | str, gpu: GPUSpec | str, inp: VisualInput, text_tokens: int = 64,
             output_tokens: int = 128, bytes_per_param: int = 2, budget: Budget | None = None) -> Breakdown:
    """Roofline breakdown of one request (batch size 1)."""
    model = get_model(model) if isinstance(model, str) else model
    gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
    if text_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts must be non-negative")
    p = bytes_per_param
    shape = encode_shape(model, inp)
    llm = model.llm
    nv = (budget or Budget()).visual(shape.visual_tokens)
    cross = model.vision.tokenizer == "cross_attn"
    in_seq = text_tokens + (0 if cross else nv)
    cross_tokens = nv if cross else 0
    enc = _stage("encoding", encoder_flops(model, shape), encoder_bytes(model, shape, p), gpu) if shape.patches else \
        StageCost("encoding", 0.0, 0.0, 0.0, "compute")
    pfl_flops = llm_prefill_flops(llm, in_seq, cross_tokens)
    pfl_bytes = llm_prefill_bytes(llm, in_seq, p, cross_tokens)
    k = min(budget.after_layer, llm.layers) if budget else 0
    kv_layers_full = 0.0
    if k and nv != shape.visual_tokens and not cross:
        # the first k layers still see every visual token; per-layer quantities mix linearly
        full_seq = text_tokens + shape.visual_tokens
        w = k / llm.layers
        pfl_flops = w * llm_prefill_flops(llm, full_seq) + (1 - w) * pfl_flops
        pfl_bytes = w * llm_prefill_bytes(llm, full_seq, p) + (1 - w) * pfl_bytes
        kv_layers_full = w * (full_seq - in_seq)   # extra cached tokens, averaged over layers
    pfl = _stage("prefilling", pfl_flops, pfl_bytes, gpu)
    kv_frac = (budget.kv_fraction if budget and budget.kv_fraction is not None else 1.0)
    dec_flops = dec_bytes = 0.0
    for i in range(1, output_tokens + 1):
        ctx = int(round((in_seq + kv_layers_full) * kv_frac)) + i
        dec_flops += decode_step_flops(llm, ctx, int(round(cross_tokens * kv_frac)))
        dec_bytes += decode_step_bytes(llm, ctx, p, int(round(cross_tokens * kv_frac)))
    dec = _stage("decoding", dec_flops, dec_bytes, gpu) if output_tokens else StageCost("decoding", 0.0, 0.0, 0.0, "memory")
    kv0 = kv_bytes(llm, in_seq + kv_layers_full, p, cross_tokens)
    kv_visual = kv_bytes(llm, 0 if cross else nv + kv_layers_full, p, cross_tokens)
    return Breakdown(
        model=model, gpu=gpu, visual_tokens=nv, text_tokens=text_tokens, output_tokens=output_tokens,
        bytes_per_param=p, encoding=enc, prefilling=pfl, decoding=dec,
        kv_bytes_after_prefill=kv0 * kv_frac,
        kv_bytes_final=kv_bytes(llm, (in_seq + kv_layers_full) * kv_frac + output_tokens, p, int(round(cross_tokens * kv_frac))),
        visual_kv_share=kv_visual / kv0 if kv0 else 0.0,
        extra={"visual_tokens_before_budget": shape.visual_tokens, "encoder_patches": shape.patches},
    )


def savings(full: Breakdown, reduced: Breakdown) -> dict[str, float]:
    """Fraction saved by a budget, per quantity (0.25 = 25% less)."""
    def frac(a: float, b: float) -> float:
        return 1.0 - b / a if a else 0.0
    return {
        "prefill_flops": frac(full.prefilling.flops, reduced.prefilling.flops),
        "ttft": frac(full.ttft_s, reduced.ttft_s),
        "tpot": frac(full.tpot_s, reduced.tpot_s),
        "kv_bytes": frac(full.kv_bytes_final, reduced.kv_bytes_final),
    }


def decode_intensity(llm: LLMSpec, context: int = 0, p: int = 2) -> float:
    return decode_step_flops(llm, context) / decode_step_bytes(llm, context, p)


def prefill_intensity(llm: LLMSpec, n: int, p: int = 2) -> float:
    return llm_prefill_flops(llm, n) / llm_prefill_bytes(llm, n, p)



# ---------------------------------------------------------------- measured runs vs their bound


def llm_spec_from_config(config: Any) -> LLMSpec:
    """An LLMSpec from a Hugging Face (text) config object or dict, e.g. `model.config.text_config`."""
    get = (lambda k, d=None: config.get(k, d)) if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    heads = int(get("num_attention_heads"))
    hidden = int(get("hidden_size"))
    return LLMSpec(
        layers=int(get("num_hidden_layers")), hidden=hidden, heads=heads,
        kv_heads=int(get("num_key_value_heads") or heads), head_dim=int(get("head_dim") or hidden // heads),
        ffn=int(get("intermediate_size")), mlp_matrices=3, vocab=int(get("vocab_size") or 32000),
    )


def gpu_for_device(device_name: str | None) -> GPUSpec | None:
    """The catalogued GPU whose id appears in a device name such as 'NVIDIA H100 80GB HBM3' (None on CPU)."""
    if not device_name:
        return None
    name = device_name.lower().replace("-", " ")
    for gpu in gpus().values():
        if gpu.id in name.split() or f" {gpu.id}" in f" {name}":
            return gpu
    return None


def roofline_bound(llm: LLMSpec, prompt_tokens: int, new_tokens: int, gpu: GPUSpec, bytes_per_param: int = 2) -> dict:
    """Roofline lower bounds for a language-model run: prefill of `prompt_tokens`, then `new_tokens` steps."""
    prefill = _stage("prefilling", llm_prefill_flops(llm, prompt_tokens), llm_prefill_bytes(llm, prompt_tokens, bytes_per_param), gpu)
    steps = [decode_step_bytes(llm, prompt_tokens + i, bytes_per_param) / gpu.bandwidth for i in range(1, max(1, new_tokens) + 1)]
    return {"gpu": gpu.id, "prefill_ms_bound": prefill.time_s * 1e3, "tpot_ms_bound": sum(steps) / len(steps) * 1e3}


def compare_to_bound(row: dict, bound: dict) -> dict:
    """Measured / bound ratios for a results row (>= 1; closer to 1 means closer to the hardware limit)."""
    out = dict(bound)
    if row.get("prefill_ms") is not None and bound["prefill_ms_bound"]:
        out["prefill_vs_bound"] = row["prefill_ms"] / bound["prefill_ms_bound"]
    if row.get("tpot_ms") is not None and bound["tpot_ms_bound"]:
        out["tpot_vs_bound"] = row["tpot_ms"] / bound["tpot_ms_bound"]
    return out

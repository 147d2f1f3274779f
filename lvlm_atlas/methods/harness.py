"""Measured greedy generation: one request, with or without a method, timed the same way every time.

`greedy_generate` runs its own prefill + cached decode loop (so every model is driven identically and
the per-phase times are exact): TTFT (prefill incl. vision + first token), TPOT (mean decode step),
LLM prefill time (decoder stack only, including a method's pruning hook), peak memory, KV-cache bytes.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lvlm_atlas.methods.transformers_adapter import (DynamicCache, ModelAdapter, cache_kwargs, decode_kwargs,
                                                     static_cache)


@dataclass
class GenerationResult:
    tokens: list[int]
    first_logits: torch.Tensor           # (vocab,) float32 logits of the first generated token
    ttft_s: float
    tpot_s: float | None
    prefill_llm_s: float
    peak_memory_bytes: int
    kv_cache_bytes: int
    extra: dict = field(default_factory=dict)


def _sync(device) -> None:
    """Wait for the device. Only for loops whose rule needs host decisions every round (speculative
    decoding reads how many draft tokens were accepted); greedy_generate never calls it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class _Clock:
    """Marks points in time without stopping the device: CUDA events on a GPU (read once at the end),
    `time.perf_counter` on a CPU (where every operation has finished when it returns)."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.marks: list = []

    def mark(self) -> int:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.append(ev)
        else:
            self.marks.append(time.perf_counter())
        return len(self.marks) - 1

    def seconds(self, a: int, b: int) -> float:
        """Seconds between marks a and b (on CUDA: waits once for the device, after the timed work)."""
        if self.cuda:
            self.marks[b].synchronize()
            return self.marks[a].elapsed_time(self.marks[b]) / 1000.0
        return self.marks[b] - self.marks[a]


def _peak_reset(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> int:
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # process high-water mark
    except Exception:  # pragma: no cover - non-POSIX
        return 0


def cache_bytes(cache) -> int:
    total = 0
    for layer in getattr(cache, "layers", []):
        if callable(getattr(layer, "nbytes", None)):  # e.g. quantized layers (methods/kv) count their packed codes
            total += int(layer.nbytes())
            continue
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()
    return total


@contextlib.contextmanager
def llm_timer(model, device):
    """Time every decoder-stack call (prepended pre-hook, so a method's pruning hook is included) with
    device-side clock marks; yields a list filled with seconds per call when the block exits."""
    lm = ModelAdapter.of(model).language_model
    clock = _Clock(device)
    spans: list[tuple[int, int]] = []
    start: list[int] = []
    times: list[float] = []

    def pre(module, args, kwargs):
        start.append(clock.mark())

    def post(module, args, kwargs, output):
        spans.append((start.pop(), clock.mark()))

    h1 = lm.register_forward_pre_hook(pre, with_kwargs=True, prepend=True)
    h2 = lm.register_forward_hook(post, with_kwargs=True)
    try:
        yield times
    finally:
        h1.remove()
        h2.remove()
        times.extend(clock.seconds(a, b) for a, b in spans)


def batched(inputs: dict, batch: int) -> dict:
    """`batch` copies of one request (equal lengths, so no padding): per-token tensors repeat along the batch
    dimension, per-image tensors (pixels, sizes, grids) are concatenated once per copy."""
    if batch == 1:
        return inputs
    out = {}
    for k, v in inputs.items():
        if not torch.is_tensor(v):
            out[k] = v
        elif k in ("input_ids", "attention_mask", "mm_token_type_ids"):
            out[k] = v.repeat(batch, 1)
        else:
            out[k] = torch.cat([v] * batch)
    return out


_COMPILED: dict = {}


def compiled_step(model, backend: str = "inductor"):
    """`model`'s forward compiled once per (model, backend) for static-shape decode steps (CUDA graphs on a
    GPU with the inductor backend)."""
    key = (id(model), backend)
    if key not in _COMPILED:
        mode = "reduce-overhead" if backend == "inductor" and next(model.parameters()).is_cuda else None
        _COMPILED[key] = torch.compile(model, backend=backend, mode=mode, dynamic=False, fullgraph=False)
    return _COMPILED[key]


@torch.no_grad()
def greedy_generate(model, inputs: dict, max_new_tokens: int = 16, eos_token_id: int | None = None,
                    device: str = "cpu", compile: str | None = None) -> GenerationResult:
    """Prefill + cached greedy decoding of `max_new_tokens` tokens, timed without stopping the device.

    The next token stays on the device between steps (no host read per step, so nothing waits); the
    tokens are read once at the end and cut after the first `eos_token_id`. TTFT covers the prefill and
    the first token; TPOT is the mean decode step over the steps up to that cut.

    `compile` (a torch.compile backend, e.g. "inductor"): a static cache sized for the request and a compiled
    decode step (CUDA graphs on a GPU); the prefill runs eagerly. For the unmodified model only.
    """
    inputs = dict(inputs)
    am = inputs.pop("attention_mask", None)
    input_ids = inputs.pop("input_ids")
    if am is None:
        am = torch.ones_like(input_ids)
    prompt_len = int(input_ids.shape[1])
    cache = (static_cache(model, prompt_len + max_new_tokens) if compile
             else DynamicCache(config=model.config.get_text_config()))
    step_fn = compiled_step(model, compile) if compile else model
    clock = _Clock(device)
    _peak_reset(device)
    with llm_timer(model, device) as llm_times:
        t0 = clock.mark()
        out = model(input_ids=input_ids, attention_mask=am, **cache_kwargs(model, cache), use_cache=True,
                    logits_to_keep=1, **inputs)
        first_logits = out.logits[0, -1].float()
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)    # (batch, 1); the tokens reported are row 0's
        t_first = clock.mark()
        kv = cache_bytes(cache)   # shapes only: no device read
        produced = [nxt]
        steps = [t_first]
        while len(produced) < max_new_tokens:
            # no padding (batch 1, or a batch of equal-length requests): decode steps need no mask; positions
            # follow from the cache (and from a method's own position bookkeeping when it shortened the sequence)
            if compile:
                pos = torch.arange(prompt_len + len(produced) - 1, prompt_len + len(produced), device=nxt.device)
                out = step_fn(input_ids=nxt, **decode_kwargs(model, cache, pos), use_cache=True, logits_to_keep=1)
            else:
                out = model(input_ids=nxt, **cache_kwargs(model, cache), use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            produced.append(nxt)
            steps.append(clock.mark())
    tokens = torch.cat(produced, dim=1)[0].tolist()    # the one host read of the run
    if eos_token_id is not None and eos_token_id in tokens:
        tokens = tokens[: tokens.index(eos_token_id) + 1]
    n_steps = len(tokens) - 1
    step_times = [clock.seconds(steps[i], steps[i + 1]) for i in range(n_steps)]
    return GenerationResult(tokens=tokens, first_logits=first_logits.cpu(), ttft_s=clock.seconds(t0, t_first),
                            tpot_s=(sum(step_times) / len(step_times)) if step_times else None,
                            prefill_llm_s=llm_times[0] if llm_times else float("nan"),
                            peak_memory_bytes=_peak(device), kv_cache_bytes=kv)


METHOD_RANGE = "atlas.method"   # the profiler range around a method's own work (selection, scoring, eviction)


def profile_request(model, inputs: dict, max_new_tokens: int = 16, device: str = "cpu") -> dict:
    """One request under the torch profiler, separate from the timed runs: the device time (CPU time on a
    CPU) spent inside a method's own code (`atlas.method` ranges) and in the whole request, and the top ops."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=False) as prof:
        greedy_generate(model, inputs, max_new_tokens, None, device)
    events = prof.key_averages()

    def dev(e):
        return getattr(e, "device_time_total", 0.0) if cuda else e.cpu_time_total

    def self_dev(e):
        return getattr(e, "self_device_time_total", 0.0) if cuda else e.self_cpu_time_total

    method = sum(dev(e) for e in events if e.key == METHOD_RANGE)
    total = sum(self_dev(e) for e in events if not e.key.startswith("atlas."))
    top = sorted((e for e in events if not e.key.startswith("atlas.")), key=self_dev, reverse=True)[:8]
    return {"clock": "device" if cuda else "cpu", "method_ms": method / 1000.0, "total_ms": total / 1000.0,
            "method_share": (method / total) if total else None,
            "top_ops": [{"op": e.key, "ms": self_dev(e) / 1000.0, "calls": e.count} for e in top]}


def agreement(base: GenerationResult, other: GenerationResult) -> dict:
    """Greedy-token match rate (position-wise over the baseline's tokens) and first-token KL(base || other)."""
    n = len(base.tokens)
    same = sum(1 for a, b in zip(base.tokens, other.tokens) if a == b)
    kl = F.kl_div(F.log_softmax(other.first_logits, -1), F.log_softmax(base.first_logits, -1),
                  log_target=True, reduction="sum")
    return {"greedy_match": same / n if n else 1.0, "first_token_kl": max(0.0, float(kl))}


def generate(model, inputs: dict, max_new_tokens: int = 16, eos_token_id: int | None = None, device: str = "cpu",
             method=None, session=None, decode=None, compile: str | None = None) -> GenerationResult:
    """`greedy_generate`, or the method's own loop when it is a `decode`-stage method (speculative decoding).

    Call it inside `with method.apply(model) as session` and pass both; `decode` (ids -> text) is the
    tokenizer's, for methods that look at token text (specvlm's lexical verification)."""
    if method is not None and getattr(getattr(method, "stage", None), "value", None) == "decode":
        return method.generate(model, inputs, max_new_tokens, eos_token_id, device, decode=decode, session=session)
    return greedy_generate(model, inputs, max_new_tokens, eos_token_id, device, compile=compile)

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

from lvlm_atlas.methods.transformers_adapter import DynamicCache, ModelAdapter, cache_kwargs


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
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


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
    """Time every decoder-stack call; the pre-hook is prepended so a method's pruning hook is included."""
    lm = ModelAdapter.of(model).language_model
    times: list[float] = []
    start: list[float] = []

    def pre(module, args, kwargs):
        _sync(device)
        start.append(time.perf_counter())

    def post(module, args, kwargs, output):
        _sync(device)
        times.append(time.perf_counter() - start.pop())

    h1 = lm.register_forward_pre_hook(pre, with_kwargs=True, prepend=True)
    h2 = lm.register_forward_hook(post, with_kwargs=True)
    try:
        yield times
    finally:
        h1.remove()
        h2.remove()


@torch.no_grad()
def greedy_generate(model, inputs: dict, max_new_tokens: int = 16, eos_token_id: int | None = None,
                    device: str = "cpu") -> GenerationResult:

    inputs = dict(inputs)
    am = inputs.pop("attention_mask", None)
    input_ids = inputs.pop("input_ids")
    if am is None:
        am = torch.ones_like(input_ids)
    cache = DynamicCache(config=model.config.get_text_config())
    tokens: list[int] = []
    step_times: list[float] = []
    _peak_reset(device)
    with llm_timer(model, device) as llm_times:
        _sync(device)
        t0 = time.perf_counter()
        out = model(input_ids=input_ids, attention_mask=am, **cache_kwargs(model, cache), use_cache=True,
                    logits_to_keep=1, **inputs)
        logits = out.logits[0, -1].float()
        nxt = int(logits.argmax())
        _sync(device)
        ttft = time.perf_counter() - t0
        first_logits = logits.cpu()
        tokens.append(nxt)
        kv = cache_bytes(cache)
        while len(tokens) < max_new_tokens and nxt != eos_token_id:
            # batch size 1 without padding: decode steps need no mask; positions follow from the cache
            # (and from a method's own position bookkeeping when it shortened the sequence)
            t1 = time.perf_counter()
            out = model(input_ids=torch.tensor([[nxt]], device=input_ids.device),
                        **cache_kwargs(model, cache), use_cache=True, logits_to_keep=1)
            nxt = int(out.logits[0, -1].argmax())
            _sync(device)
            step_times.append(time.perf_counter() - t1)
            tokens.append(nxt)
    return GenerationResult(tokens=tokens, first_logits=first_logits, ttft_s=ttft,
                            tpot_s=(sum(step_times) / len(step_times)) if step_times else None,
                            prefill_llm_s=llm_times[0] if llm_times else float("nan"),
                            peak_memory_bytes=_peak(device), kv_cache_bytes=kv)


def agreement(base: GenerationResult, other: GenerationResult) -> dict:
    """Greedy-token match rate (position-wise over the baseline's tokens) and first-token KL(base || other)."""
    n = len(base.tokens)
    same = sum(1 for a, b in zip(base.tokens, other.tokens) if a == b)
    kl = F.kl_div(F.log_softmax(other.first_logits, -1), F.log_softmax(base.first_logits, -1),
                  log_target=True, reduction="sum")
    return {"greedy_match": same / n if n else 1.0, "first_token_kl": max(0.0, float(kl))}


def generate(model, inputs: dict, max_new_tokens: int = 16, eos_token_id: int | None = None, device: str = "cpu",
             method=None, session=None, decode=None) -> GenerationResult:
    """`greedy_generate`, or the method's own loop when it is a `decode`-stage method (speculative decoding).

    Call it inside `with method.apply(model) as session` and pass both; `decode` (ids -> text) is the
    tokenizer's, for methods that look at token text (specvlm's lexical verification)."""
    if method is not None and getattr(getattr(method, "stage", None), "value", None) == "decode":
        return method.generate(model, inputs, max_new_tokens, eos_token_id, device, decode=decode, session=session)
    return greedy_generate(model, inputs, max_new_tokens, eos_token_id, device)

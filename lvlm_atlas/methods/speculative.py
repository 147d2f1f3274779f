"""Speculative decoding: a draft model proposes `gamma` tokens, the target verifies them in ONE forward pass.

`speculative_generate` is the generation loop of `decode`-stage methods (e.g. ``specvlm``). It is written
for batch size 1 and keeps two caches:

* the **target cache** holds the prompt and, after every round, only the tokens that were accepted
  (the rejected draft positions are cropped away before the next round);
* the **draft cache** holds the draft's (possibly pruned) prompt and the accepted tokens it has seen.

The draft sees the prompt with some visual tokens removed (`keep_fn` picks which sequence positions
survive, from what the target's prefill captured); every kept token keeps its original position id
(1-D RoPE or Qwen2-VL 3-D M-RoPE), and generated tokens continue at the target's positions in both models.

One round, with `tokens` the output so far (its last token not yet in the target cache):

1. feed the draft the tokens it has not seen, then let it propose d_1..d_gamma greedily;
2. run the target once on [tokens[-1], d_1..d_gamma] -> its greedy choices g_0..g_gamma;
3. accept d_i while it equals g_{i-1}, or while the `accept` policy allows the mismatch; the first
   rejected position i yields g_{i-1} instead (all accepted: the bonus token g_gamma);
4. crop both caches to the accepted tokens.

With the strict policy the output is exactly the target's own greedy output (lossless), whatever the draft.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from lvlm_atlas.methods.harness import GenerationResult, _peak, _peak_reset, _sync, cache_bytes, llm_timer
from lvlm_atlas.methods.transformers_adapter import DynamicCache, ModelAdapter, cache_kwargs, crop_cache

# accept(draft_token, target_token, target_logits_row) -> bool; only asked when the two tokens differ
AcceptFn = Callable[[int, int, torch.Tensor], bool]


@dataclass
class PrefillCapture:
    """What the target's prefill exposes to the draft-selection rule (`keep_fn`)."""

    input_ids: torch.Tensor                  # (1, L)
    inputs_embeds: torch.Tensor              # (1, L, D) merged sequence at the decoder input
    position_ids: torch.Tensor               # (1, L) or (3, 1, L): the positions the decoder used
    attn_inputs: dict[int, tuple] = field(default_factory=dict)   # layer -> (hidden, position_embeddings)
    adapter: ModelAdapter | None = None
    mm_kwargs: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.inputs_embeds.shape[1])


@dataclass
class SpecStats:
    rounds: int = 0
    accepted_lengths: list[int] = field(default_factory=list)   # tokens emitted per target verification
    drafted: int = 0
    accepted_drafts: int = 0
    relaxed: int = 0                      # mismatching draft tokens accepted by a relaxed policy
    draft_s: float = 0.0                  # draft forwards while decoding
    draft_prefill_s: float = 0.0
    verify_s: float = 0.0
    select_s: float = 0.0                 # ranking the visual tokens for the draft
    decode_s: float = 0.0                 # everything after the first token (incl. draft prefill and selection)
    draft_visual_tokens: int = 0
    target_visual_tokens: int = 0

    def summary(self) -> dict:
        n = len(self.accepted_lengths)
        return {
            "rounds": self.rounds,
            "mean_accepted_length": (sum(self.accepted_lengths) / n) if n else None,
            "acceptance_rate": (self.accepted_drafts / self.drafted) if self.drafted else None,
            "relaxed_accepts": self.relaxed,
            "draft_ms": self.draft_s * 1000, "draft_prefill_ms": self.draft_prefill_s * 1000,
            "verify_ms": self.verify_s * 1000, "select_ms": self.select_s * 1000,
            "decode_ms": self.decode_s * 1000,
            "draft_visual_tokens": self.draft_visual_tokens, "target_visual_tokens": self.target_visual_tokens,
        }


def visual_mask(adapter: ModelAdapter, input_ids: torch.Tensor) -> torch.Tensor:
    """Image tokens, and video tokens on models that have them (Qwen2-VL family)."""
    mask = input_ids == adapter.image_token_id
    video = getattr(adapter.model.config, "video_token_id", None)
    if video is not None:
        mask = mask | (input_ids == int(video))
    return mask


class _Positions:
    """Position ids of generated tokens: the target's next position after the prompt, plus an offset."""

    def __init__(self, prompt_positions: torch.Tensor):
        self.next = prompt_positions.amax(dim=-1) + 1      # (1,) or (3, 1)

    def __call__(self, offset: int, q: int) -> torch.Tensor:
        steps = torch.arange(q, device=self.next.device) + int(offset)
        return self.next.unsqueeze(-1) + steps             # (1, q) or (3, 1, q)


def _capture_prefill(model, want_attention: bool):
    """Hooks that record the decoder input and (optionally) every layer's attention input, once."""
    adapter = ModelAdapter.of(model)
    got: dict = {"attn": {}}
    handles = []

    def on_lm(module, args, kwargs):
        if "embeds" not in got:
            got["embeds"] = kwargs.get("inputs_embeds")
            got["pos"] = kwargs.get("position_ids")
        return None

    handles.append(adapter.language_model.register_forward_pre_hook(on_lm, with_kwargs=True))
    if want_attention:
        for layer in range(adapter.num_layers):
            def on_attn(module, args, kwargs, layer=layer):
                if layer not in got["attn"]:
                    hidden = kwargs.get("hidden_states", args[0] if args else None)
                    got["attn"][layer] = (hidden, kwargs.get("position_embeddings"))
                return None

            handles.append(adapter.attention(layer).register_forward_pre_hook(on_attn, with_kwargs=True))
    return got, handles


def _slice_hook(keep_seq: torch.Tensor):
    """A one-shot pre-hook for a separate draft model's decoder stack: keep only `keep_seq` rows."""
    state = {"done": False}

    def hook(module, args, kwargs):
        if state["done"]:
            return None
        state["done"] = True
        embeds = kwargs["inputs_embeds"]
        L = embeds.shape[1]
        dev = embeds.device
        ks = keep_seq.to(dev)
        pos = kwargs.get("position_ids")
        if pos is None:
            pos = torch.arange(L, device=dev).unsqueeze(0)
        kwargs["inputs_embeds"] = embeds[:, ks]
        kwargs["position_ids"] = pos[..., ks]
        kwargs["attention_mask"] = torch.ones(1, ks.numel(), dtype=torch.long, device=dev)
        return args, kwargs

    return hook


def _logits(model, cache, ids: list[int], positions: torch.Tensor, device, keep_all: bool) -> torch.Tensor:
    out = model(input_ids=torch.tensor([ids], device=device), position_ids=positions, **cache_kwargs(model, cache),
                use_cache=True, logits_to_keep=0 if keep_all else 1)
    return out.logits[0].float()


def _strict(draft_token: int, target_token: int, row: torch.Tensor) -> bool:
    return False


@torch.no_grad()
def speculative_generate(model, inputs: dict, *, gamma: int, keep_fn: Callable[[PrefillCapture], torch.Tensor | None],
                         accept: AcceptFn | None = None, max_new_tokens: int = 16, eos_token_id: int | None = None,
                         device: str = "cpu", draft_model=None, want_attention: bool = True,
                         keep_caches: bool = False) -> GenerationResult:
    """Greedy speculative decoding of one request (batch size 1). See the module docstring.

    `keep_fn(capture)` returns the sorted sequence positions the draft keeps (None: all).
    `draft_model` None drafts with `model` itself (on the target's merged embeddings, no second vision
    pass); otherwise a model of the same family and tokenizer (it encodes the image itself).
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    accept = accept or _strict
    inputs = dict(inputs)
    input_ids = inputs.pop("input_ids")
    if input_ids.shape[0] != 1:
        raise NotImplementedError("speculative decoding runs one request at a time (batch size 1)")
    am = inputs.pop("attention_mask", None)
    if am is None:
        am = torch.ones_like(input_ids)
    dev = input_ids.device
    stats = SpecStats()
    adapter = ModelAdapter.of(model)
    stats.target_visual_tokens = int(visual_mask(adapter, input_ids).sum())

    # --- target prefill (captures the decoder input and attention inputs for the draft's selection) -----
    tcache = DynamicCache(config=model.config.get_text_config())
    got, handles = _capture_prefill(model, want_attention)
    _peak_reset(device)
    try:
        with llm_timer(model, device) as llm_times:
            _sync(device)
            t0 = time.perf_counter()
            out = model(input_ids=input_ids, attention_mask=am, **cache_kwargs(model, tcache), use_cache=True,
                        logits_to_keep=1, **inputs)
            first_logits = out.logits[0, -1].float()
            tokens = [int(first_logits.argmax())]
            _sync(device)
            ttft = time.perf_counter() - t0
            prefill_llm = llm_times[0] if llm_times else float("nan")
    finally:
        for h in handles:
            h.remove()
    t_start = time.perf_counter()
    embeds = got["embeds"]
    pos = got["pos"]
    L = int(embeds.shape[1])
    if pos is None:
        pos = torch.arange(L, device=dev).unsqueeze(0)
    capture = PrefillCapture(input_ids=input_ids, inputs_embeds=embeds, position_ids=pos, attn_inputs=got["attn"],
                             adapter=adapter,
                             mm_kwargs={k: inputs[k] for k in ("image_sizes", "image_grid_thw") if k in inputs})
    positions = _Positions(pos)
    t_prompt = int(tcache.get_seq_length())

    # --- draft selection and prefill --------------------------------------------------------------------
    t1 = time.perf_counter()
    keep_seq = keep_fn(capture)
    _sync(device)
    stats.select_s = time.perf_counter() - t1
    capture.attn_inputs.clear()
    if keep_seq is None:
        keep_seq = torch.arange(L, device=dev)
    keep_seq = torch.as_tensor(keep_seq, device=dev).long()
    is_vis = visual_mask(adapter, input_ids[0])
    stats.draft_visual_tokens = int(is_vis[keep_seq].sum()) if keep_seq.numel() else 0
    drafter = model if draft_model is None else draft_model
    dcache = DynamicCache(config=drafter.config.get_text_config())
    t1 = time.perf_counter()
    if draft_model is None:
        drafter(inputs_embeds=embeds[:, keep_seq], position_ids=pos[..., keep_seq],
                attention_mask=torch.ones(1, keep_seq.numel(), dtype=torch.long, device=dev),
                **cache_kwargs(drafter, dcache), use_cache=True, logits_to_keep=1)
    else:
        lm = ModelAdapter.of(drafter).language_model
        h = lm.register_forward_pre_hook(_slice_hook(keep_seq), with_kwargs=True)
        try:
            drafter(input_ids=input_ids, attention_mask=am, **cache_kwargs(drafter, dcache), use_cache=True,
                    logits_to_keep=1, **inputs)
        finally:
            h.remove()
    _sync(device)
    stats.draft_prefill_s = time.perf_counter() - t1
    d_prompt = int(dcache.get_seq_length())
    d_fed = 0   # generated tokens already in the draft cache
    kv = cache_bytes(tcache) + cache_bytes(dcache)

    # --- rounds ---------------------------------------------------------------------------------------
    while len(tokens) < max_new_tokens and tokens[-1] != eos_token_id:
        g = min(gamma, max_new_tokens - len(tokens) - 1)
        drafts: list[int] = []
        if g > 0:
            t1 = time.perf_counter()
            feed = tokens[d_fed:]
            logits = _logits(drafter, dcache, feed, positions(d_fed, len(feed)), dev, keep_all=False)
            d_fed = len(tokens)
            for i in range(g):
                drafts.append(int(logits[-1].argmax()))
                if i < g - 1:
                    logits = _logits(drafter, dcache, [drafts[-1]], positions(len(tokens) + i, 1), dev,
                                     keep_all=False)
            _sync(device)
            stats.draft_s += time.perf_counter() - t1
        t1 = time.perf_counter()
        n_before = len(tokens) - 1                        # generated tokens in the target cache
        vlogits = _logits(model, tcache, [tokens[-1]] + drafts, positions(n_before, 1 + len(drafts)), dev,
                          keep_all=True)
        choice = vlogits.argmax(dim=-1).tolist()          # g_0 .. g_len(drafts)
        n = 0
        for i, d in enumerate(drafts):
            if d == choice[i]:
                n += 1
                continue
            if accept(d, choice[i], vlogits[i]):
                n += 1
                stats.relaxed += 1
                continue
            break
        new = drafts[:n] + [choice[n]]
        crop_cache(tcache, t_prompt + n_before + 1 + n)   # the target cache holds accepted tokens only
        _sync(device)
        stats.verify_s += time.perf_counter() - t1
        if drafts:
            keep_d = len(tokens) + min(n, len(drafts) - 1)  # the last draft token was never fed to the draft
            crop_cache(dcache, d_prompt + keep_d)
            d_fed = keep_d
        stats.rounds += 1
        stats.drafted += len(drafts)
        stats.accepted_drafts += n
        stats.accepted_lengths.append(n + 1)
        for t in new:
            tokens.append(t)
            if t == eos_token_id or len(tokens) >= max_new_tokens:
                break
    _sync(device)
    stats.decode_s = time.perf_counter() - t_start
    n_dec = len(tokens) - 1
    return GenerationResult(tokens=tokens, first_logits=first_logits.cpu(), ttft_s=ttft,
                            tpot_s=(stats.decode_s / n_dec) if n_dec else None, prefill_llm_s=prefill_llm,
                            peak_memory_bytes=_peak(device), kv_cache_bytes=kv,
                            extra={"speculative": stats.summary(),
                                   **({"caches": (tcache, dcache), "positions": positions} if keep_caches else {})})

"""SpecVLM (Ji et al., EMNLP 2025): speculative decoding whose draft sees verifier-guided pruned visual tokens.

The target (verifier) prefills the full prompt; its attention from the text tokens after the last visual
token onto each visual token (heads and query rows averaged, then averaged over all layers) ranks the
visual tokens. The draft keeps `budget` of them in two stages: (I) the top-ranked tokens until they hold
`percentage` of the total attention mass (at most the budget), (II) the rest of the budget spread
uniformly over the remaining visual tokens. The draft proposes `gamma` tokens per round; the target
verifies them in one forward pass (`lvlm_atlas.methods.speculative`).

Verification: `strict` (greedy exact match: the output is the target's own greedy output), `random`
(a mismatching draft token is accepted with probability `p`), `lexical` (a mismatch is accepted only
when both the draft's and the target's token are function words / punctuation, listed as data in
`lvlm_atlas/methods/data/relaxable_tokens.txt`; content words stay strict).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch

from lvlm_atlas.methods.base import Method
from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.registry import register
from lvlm_atlas.methods.stages import Stage

VERIFY_MODES = ("strict", "random", "lexical")
RELAXABLE_FILE = Path(__file__).resolve().parent.parent / "data" / "relaxable_tokens.txt"


def verifier_scores(capture) -> torch.Tensor:
    """(n_visual,) attention each visual token receives from the text after the last visual token, heads and
    query rows averaged, then averaged over the decoder layers (the official `convert_attention_to_score`)."""
    from lvlm_atlas.methods.signals import llm_attention_received
    from lvlm_atlas.methods.speculative import visual_mask

    ids = capture.input_ids[0]
    is_vis = visual_mask(capture.adapter, ids)
    vis = is_vis.nonzero().squeeze(1)
    last = int(vis.max())
    rows = torch.arange(last + 1, ids.numel(), device=ids.device)
    if rows.numel() == 0:
        rows = torch.tensor([ids.numel() - 1], device=ids.device)
    total = torch.zeros(ids.numel(), dtype=torch.float32, device=ids.device)
    layers = sorted(capture.attn_inputs)
    for layer in layers:
        hidden, pe = capture.attn_inputs[layer]
        got = llm_attention_received(capture.adapter.attention(layer), hidden, pe, rows)[0]   # (heads, T)
        total += got.float().mean(0) / rows.numel()
    return (total / max(1, len(layers)))[vis]


def two_stage_keep(scores: torch.Tensor, k: int, percentage: float | None) -> torch.Tensor:
    """Indices (sorted) of the k visual tokens the draft keeps: stage I by attention mass, stage II uniform."""
    n = scores.numel()
    k = min(k, n)
    order = torch.argsort(scores.float().cpu(), descending=True, stable=True)
    if percentage is None:
        n_attn = k
    else:
        cum = torch.cumsum(scores.float().cpu()[order], 0)
        target = float(cum[-1]) * percentage
        n_attn = int((cum < target).sum()) + 1     # smallest count whose mass reaches the target share
        n_attn = min(n_attn, k)
    chosen = order[:n_attn]
    rest_mask = torch.ones(n, dtype=torch.bool)
    rest_mask[chosen] = False
    rest = rest_mask.nonzero().squeeze(1)
    n_uni = k - n_attn
    if n_uni > 0 and rest.numel():
        uni = rest[torch.linspace(0, rest.numel() - 1, n_uni, dtype=torch.long)]   # as the official code spaces them
        chosen = torch.cat([chosen, uni])
    return torch.sort(chosen).values


@functools.lru_cache(maxsize=8)
def load_relaxable(path: str) -> frozenset[str]:
    words = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            words.add(line.strip().lower())
    return frozenset(words)


def relaxable_ids(decode, vocab_size: int, words: frozenset[str]) -> torch.Tensor:
    """(vocab,) bool: token ids whose decoded text is a listed word / punctuation, or whitespace only."""
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    for i in range(vocab_size):
        try:
            text = decode([i])
        except Exception:  # ids a tokenizer cannot decode alone
            continue
        if not text:
            continue               # special tokens (eos, padding, image) are never relaxed
        t = text.strip().lower()
        if t == "" or t in words:
            mask[i] = True
    return mask


class _DecodeSession:
    """What `SpecVLM.apply` yields: no hooks on the model; `last` holds the latest request's statistics."""

    def __init__(self, model, method):
        self.model = model
        self.method = method
        self.last = None
        self.speculative: dict | None = None
        self.active_hooks = 0


@register("specvlm")
@dataclass
class SpecVLM(Method):
    budget: int | float | None = 0.1     # visual tokens the DRAFT keeps (the target always sees all)
    gamma: int = 10                      # draft tokens proposed per round
    verify: str = "strict"               # strict | random | lexical
    p: float = 0.5                       # random: probability of accepting a mismatching draft token
    percentage: float | None = 0.4       # stage I: share of the verifier's attention mass kept by rank
    draft: str | None = None             # None: self-draft (the target); else a preset / hub id
    relaxable: str | None = None         # lexical: relaxable-token file (default: the packaged list)
    compare: bool = True                 # also run plain greedy decoding: speedup and token agreement

    stage: ClassVar[Stage] = Stage.DECODE
    needs: ClassVar[frozenset[str]] = frozenset({"llm_attention"})

    def __post_init__(self):
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}")
        if not 0.0 <= float(self.p) <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {self.p}")
        if int(self.gamma) < 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")
        if self.percentage is not None and not 0.0 < float(self.percentage) <= 1.0:
            raise ValueError(f"percentage must lie in (0, 1], got {self.percentage}")
        self._draft_model = None
        self._relax_mask = None

    @contextlib.contextmanager
    def apply(self, model) -> Iterator[Any]:
        """A decode method drives its own loop (`generate`); nothing is hooked into the model."""
        yield _DecodeSession(model, self)

    # --- the draft's view of the prompt --------------------------------------------------------------
    def keep_sequence(self, capture) -> torch.Tensor | None:
        from lvlm_atlas.methods.speculative import visual_mask

        ids = capture.input_ids[0]
        is_vis = visual_mask(capture.adapter, ids)
        n = int(is_vis.sum())
        if n == 0:
            return None
        k = resolve_budget(self.budget, n)
        if k >= n:
            return None
        keep_vis = two_stage_keep(verifier_scores(capture), k, self.percentage).to(ids.device)
        vis_pos = is_vis.nonzero().squeeze(1)[keep_vis]
        text_pos = (~is_vis).nonzero().squeeze(1)
        return torch.sort(torch.cat([text_pos, vis_pos])).values

    # --- verification policy ---------------------------------------------------------------------------
    def _accept_fn(self, decode, vocab_size: int):
        if self.verify == "strict":
            return None
        if self.verify == "random":
            gen = torch.Generator().manual_seed(int(self.seed))
            p = float(self.p)
            return lambda d, t, row: bool(torch.rand((), generator=gen) < p)
        if decode is None:
            raise ValueError("verify='lexical' needs the model's tokenizer (pass decode=...)")
        if self._relax_mask is None or self._relax_mask.numel() != vocab_size:
            words = load_relaxable(str(self.relaxable or RELAXABLE_FILE))
            self._relax_mask = relaxable_ids(decode, vocab_size, words)
        mask = self._relax_mask
        return lambda d, t, row: bool(mask[d]) and bool(mask[t])

    def _drafter(self, model, device):
        if self.draft is None:
            return None
        if self._draft_model is None:
            from lvlm_atlas.methods import presets

            self._draft_model = presets.load(self.draft, device=device, dtype=next(model.parameters()).dtype).model
        return self._draft_model

    # --- generation ------------------------------------------------------------------------------------
    def generate(self, model, inputs: dict, max_new_tokens: int = 16, eos_token_id: int | None = None,
                 device: str = "cpu", decode=None, session: _DecodeSession | None = None):
        from lvlm_atlas.methods import harness
        from lvlm_atlas.methods.session import RequestStats as _Stats
        from lvlm_atlas.methods.speculative import speculative_generate

        vocab = int(model.config.get_text_config().vocab_size)
        res = speculative_generate(model, inputs, gamma=int(self.gamma), keep_fn=self.keep_sequence,
                                   accept=self._accept_fn(decode, vocab), max_new_tokens=max_new_tokens,
                                   eos_token_id=eos_token_id, device=device, draft_model=self._drafter(model, device))
        spec = res.extra["speculative"]
        if self.compare:
            base = harness.greedy_generate(model, inputs, max_new_tokens, eos_token_id, device)
            n_b, n_s = len(base.tokens) - 1, len(res.tokens) - 1
            base_decode = (base.tpot_s or 0.0) * n_b
            spec["baseline_decode_ms"] = base_decode * 1000
            spec["speedup"] = ((base_decode / n_b) / (spec["decode_ms"] / 1000 / n_s)
                               if n_b and n_s and spec["decode_ms"] > 0 else None)
            spec["token_agreement"] = harness.agreement(base, res)["greedy_match"]
            spec["identical_to_target"] = base.tokens == res.tokens
        if session is not None:
            st = _Stats(visual_before=spec["target_visual_tokens"], visual_after=spec["target_visual_tokens"])
            st.method_overhead_s = spec["select_ms"] / 1000
            session.last = st
            session.speculative = spec
        return res

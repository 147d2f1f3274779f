"""Where in the LVLM pipeline a method acts (mirrors the stage taxonomy of the catalog). No torch."""
from __future__ import annotations

from enum import Enum


class Stage(str, Enum):
    VISION = "vision"      # in or after the vision tower / projector (may use vision-side signals)
    PRE_LLM = "pre_llm"    # on the merged input embeddings, before the first decoder layer
    IN_LLM = "in_llm"      # inside the decoder, at the input of chosen layers
    KV = "kv"              # on the KV cache: what is kept, merged or quantised after prefill and while decoding
    DECODE = "decode"      # the decoding loop itself (e.g. speculative decoding: draft + one-pass verification)

    @property
    def prunes_before_llm(self) -> bool:
        return self in (Stage.VISION, Stage.PRE_LLM)

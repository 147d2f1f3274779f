"""Is a paper about making large vision-language model inference cheaper?

The score combines wording and similarity to the curated catalog, squashed into (0, 1):
  visual context   -- a phrase from `relevance.visual_terms` (text-only LLM work has none);
  efficiency       -- distinct phrases from `relevance.efficiency_terms` (capped);
  off-topic cues   -- phrases from `relevance.negative_terms` (hallucination, generation, detection...);
  catalog          -- the highest TF-IDF cosine to a curated catalog paper.
Weights are fixed here and measured by `python -m lvlm_atlas.ingest.evaluate` on tests/data/relevance_labelled.yaml.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from lvlm_atlas.ingest.config import RelevanceSettings
from lvlm_atlas.ingest.text import matched_terms

BIAS = -3.0
W_VISUAL = 2.0
W_EFFICIENCY = 0.9     # per distinct efficiency phrase, up to EFFICIENCY_CAP
EFFICIENCY_CAP = 4
W_NEGATIVE = -1.2      # per distinct off-topic phrase, up to 2
W_SIMILARITY = 4.0
W_NO_VISUAL = -2.5     # text-only efficiency work (KV cache for LLMs, LLM serving) is not proposed


@dataclass(frozen=True)
class Relevance:
    score: float
    visual: list[str]
    efficiency: list[str]
    negative: list[str]
    similarity: float

    def reasons(self) -> list[str]:
        out = [f"relevance {self.score:.2f}"]
        if self.efficiency:
            out.append("efficiency terms: " + ", ".join(self.efficiency[:5]))
        if not self.visual:
            out.append("no vision-language context")
        if self.negative:
            out.append("off-topic cues: " + ", ".join(self.negative))
        return out


def relevance(title: str, abstract: str, settings: RelevanceSettings, catalog_similarity: float) -> Relevance:
    text = f"{title}. {abstract}"
    visual = matched_terms(text, settings.visual_terms)
    eff = matched_terms(text, settings.efficiency_terms)
    neg = matched_terms(text, settings.negative_terms)
    z = (BIAS + (W_VISUAL if visual else W_NO_VISUAL) + W_EFFICIENCY * min(len(eff), EFFICIENCY_CAP)
         + W_NEGATIVE * min(len(neg), 2) + W_SIMILARITY * catalog_similarity)
    return Relevance(score=round(1 / (1 + math.exp(-z)), 3), visual=visual, efficiency=eff, negative=neg,
                     similarity=round(catalog_similarity, 3))

"""What the framework hands a method's hooks, and what a selection returns (no dependency on the session)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lvlm_atlas.methods.layout import TokenLayout


@dataclass
class Selection:
    """Which visual tokens survive: `keep` indexes the candidate visual tokens handed to the method
    (0..n-1, any order; the framework sorts). `embeds` optionally replaces the surviving tokens' vectors
    (aligned with `keep` as returned), for merging methods."""

    keep: torch.Tensor
    embeds: torch.Tensor | None = None
    # in_llm with renumbered positions: positions in `keep` of tokens that the official code appends after
    # the kept visual tokens (e.g. SparseVLM's cluster tokens), in order; their rows only host them
    after: torch.Tensor | None = None


@dataclass
class PrefillContext:
    """Input of `Method.select` for `vision` / `pre_llm` methods (one request, batch size 1)."""

    layout: TokenLayout
    inputs_embeds: torch.Tensor           # (1, L, D) merged sequence
    keep: int                             # number of visual tokens to keep (budget resolved)
    generator: torch.Generator
    vision: dict[str, torch.Tensor]       # vision-side signals aligned with layout.visual_index (if requested)
    family: str
    project: Callable[[torch.Tensor], torch.Tensor] | None = None   # the model's vision->LLM projector

    @property
    def visual_embeds(self) -> torch.Tensor:
        return self.inputs_embeds[0, self.layout.visual_index]


@dataclass
class LayerContext:
    """Input of `Method.select_in_llm` at the input of decoder layer `layer` (batch size 1).

    `visual_rows` are row indices (into the current, possibly already shortened sequence) of the
    visual tokens still present. The previous layer's attention, recomputed from its q/k projections
    for just the query rows asked for (causal; the model itself stays on SDPA / flash-attn):

    * `received(rows)` -> (heads, T): attention each key receives, summed over the query `rows`
      (attention-score kernel: Triton on CUDA, exact chunked torch on CPU; no rows x T matrix);
    * `mass_to(rows, cols)` -> (heads, len(rows)): share of each query row's attention on keys `cols`
      (two log-sum-exp passes of the same kernel);
    * `attention(rows)` -> (heads, len(rows), T): the probability rows themselves (plain torch).

    With a method attribute `score_layer = "own"` these are the attention of layer `layer` itself
    (recomputed from its input after its input norm), as the official PyramidDrop code ranks.
    """

    layer: int
    hidden: torch.Tensor                  # (1, T, D)
    visual_rows: torch.Tensor
    keep: int
    layout: TokenLayout
    attention: Callable[[torch.Tensor], torch.Tensor]
    generator: torch.Generator
    stage_index: int                      # 0 for the first pruning layer, 1 for the second, ...
    received: Callable[[torch.Tensor], torch.Tensor] | None = None
    mass_to: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    rows: torch.Tensor | None = None           # original sequence index of each current row
    inputs_embeds: torch.Tensor | None = None  # (1, L, D) the decoder input of this prefill (all rows)

    @property
    def last_row(self) -> int:
        return int(self.hidden.shape[1] - 1)

    @property
    def text_rows_after_image(self) -> torch.Tensor:
        t = self.hidden.shape[1]
        is_vis = torch.zeros(t, dtype=torch.bool, device=self.hidden.device)
        is_vis[self.visual_rows] = True
        first = int(self.visual_rows.min()) if self.visual_rows.numel() else 0
        rows = (~is_vis).nonzero().squeeze(1)
        return rows[rows > first]

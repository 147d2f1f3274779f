"""Method base class, selection results and the contexts handed to a method's hooks."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import torch

from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.layout import TokenLayout
from lvlm_atlas.methods.stages import Stage


@dataclass
class Selection:
    """Which visual tokens survive: `keep` indexes the candidate visual tokens handed to the method
    (0..n-1, any order; the framework sorts). `embeds` optionally replaces the surviving tokens' vectors
    (aligned with `keep` as returned), for merging methods."""

    keep: torch.Tensor
    embeds: torch.Tensor | None = None


@dataclass
class PrefillContext:
    """Input of `Method.select` for `vision` / `pre_llm` methods (one request, batch size 1)."""

    layout: TokenLayout
    inputs_embeds: torch.Tensor           # (1, L, D) merged sequence
    keep: int                             # number of visual tokens to keep (budget resolved)
    generator: torch.Generator
    vision: dict[str, torch.Tensor]       # vision-side signals aligned with layout.visual_index (if requested)
    family: str

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


@dataclass
class Method:
    """Base of all methods. Subclasses are dataclasses whose fields are the method's parameters.

    Class attributes: `name` (set by `registry.register`), `stage`, `needs` (signals, e.g.
    {"vision_attention"}), `supports_batch` (False: batch size 1 only).
    """

    budget: int | float | None = None     # visual tokens kept (int) or fraction of them (float)
    seed: int = 0

    name: ClassVar[str] = "method"
    stage: ClassVar[Stage] = Stage.PRE_LLM
    needs: ClassVar[frozenset[str]] = frozenset()
    supports_batch: ClassVar[bool] = False

    # --- hooks a subclass overrides (according to its stage) ---------------------------------------
    def select(self, ctx: PrefillContext) -> Selection:  # vision / pre_llm
        raise NotImplementedError(f"{type(self).__name__} (stage {self.stage.value}) does not implement select()")

    def prune_layers(self, num_layers: int) -> list[int]:  # in_llm
        return []

    def select_in_llm(self, ctx: LayerContext) -> Selection:  # in_llm
        raise NotImplementedError(f"{type(self).__name__} does not implement select_in_llm()")

    def keep_at(self, stage_index: int, n_visual_now: int, n_visual_total: int) -> int:
        """in_llm: tokens to keep at the `stage_index`-th pruning layer (default: the budget, once)."""
        return resolve_budget(self.budget, n_visual_total)

    def install(self, session: Any) -> None:
        """kv / cache / decode methods: register extra hooks through `session.add_forward_hook` etc."""

    def params(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # --- application ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def apply(self, model) -> Iterator[Any]:
        """Attach this method to `model` for the duration of the `with` block; hooks are always removed."""
        from lvlm_atlas.methods.session import Session

        session = Session(model, self)
        session.open()
        try:
            yield session
        finally:
            session.close()


SCORE_BACKENDS = ("auto", "triton", "torch")


@dataclass
class AttentionGuidedMethod(Method):
    """An `in_llm` method ranked by the previous layer's attention (`ctx.received` / `ctx.mass_to`).

    `score_backend` picks the attention-score kernel: "auto" (Triton on CUDA, exact chunked torch on
    CPU), "triton" (also on CPU under TRITON_INTERPRET=1) or "torch".
    """

    score_backend: str = "auto"

    def __post_init__(self):
        if self.score_backend not in SCORE_BACKENDS:
            raise ValueError(f"score_backend must be one of {', '.join(SCORE_BACKENDS)}, got {self.score_backend!r}")

"""Method base class. The contexts and selection type its hooks use live in `contexts` (re-exported here)."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch

from lvlm_atlas.methods.budget import resolve_budget
from lvlm_atlas.methods.contexts import LayerContext, PrefillContext, Selection  # noqa: F401 (re-exported)
from lvlm_atlas.methods.stages import Stage


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
    """An `in_llm` method ranked by attention (`ctx.received` / `ctx.mass_to`): the previous layer's, or
    the pruning layer's own when the method has `score_layer = "own"` (see `methods/__init__.py`).

    `score_backend` picks the attention-score kernel: "auto" (Triton on CUDA, exact chunked torch on
    CPU), "triton" (also on CPU under TRITON_INTERPRET=1) or "torch".
    """

    score_backend: str = "auto"

    def __post_init__(self):
        if self.score_backend not in SCORE_BACKENDS:
            raise ValueError(f"score_backend must be one of {', '.join(SCORE_BACKENDS)}, got {self.score_backend!r}")

"""Method cards: one YAML file per runnable method, `lvlm_atlas/methods/cards/<name>.yaml`.

This module is the card format: a pydantic model (unknown keys are errors) that both the methods
package (`atlas list`, parameter defaults) and the site (method pages) read, without importing torch
or each other. The card file name is the method's registry name. Fields:

- ``name``: the registry name (``[a-z0-9_]+``), equal to the file name.
- ``label``: the display name (e.g. ``SnapKV``); ``paper``: the catalog id of the paper it implements.
- ``stage``: where it acts (``vision``, ``pre_llm``, ``in_llm``, ``kv``, ``decode``; see lvlm_atlas/methods/stages.py).
- ``signal`` / ``summary``: what it scores with, and its rule in one or two sentences (our words).
- ``attention_backends``, ``batch``, ``models``: what it supports (model types as transformers names them).
- ``parameters``: name, type, default (the paper's / official code's default), description.
- ``claims``: numbers the paper states (model, benchmark, metric, value, baseline, setting).
- ``official``: the official code read for this implementation (repository, file, commit) and the rule
  it implements, in our words.
- ``deviations``: each deliberate difference from the official code, with the reason and the option
  that restores the official behaviour when there is one.
- ``fidelity``: what was compared against the official rule, on which input, and the result.
- ``notes``: anything else a user should know.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Cards ship inside the package (next to the method code they describe), so an installed package
# can list and run its methods without a checkout.
CARDS_DIR = Path(__file__).resolve().parent.parent / "methods" / "cards"

STAGES = ("vision", "pre_llm", "in_llm", "kv", "decode")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Strict):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    type: str
    default: Any = None
    description: str = Field(min_length=3)


class Claim(_Strict):
    model: str
    benchmark: str
    metric: str
    value: str | float
    baseline: str | float | None = None
    setting: str


class Official(_Strict):
    repository: str = Field(pattern=r"^https://")
    file: str
    commit: str = Field(pattern=r"^[0-9a-f]{7,40}$")
    rule: str = Field(min_length=20)


class Deviation(_Strict):
    what: str = Field(min_length=5)
    why: str = Field(min_length=5)
    option: str | None = None  # the parameter setting that restores the official behaviour, if any


class Fidelity(_Strict):
    compared_with: str = Field(min_length=5)  # the official rule's source (repository, file, commit)
    input: str = Field(min_length=5)          # what both were fed
    result: Literal["identical", "differs"]
    details: str = Field(min_length=5)


class MethodCard(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    label: str
    paper: str | None = None
    stage: Literal["vision", "pre_llm", "in_llm", "kv", "decode"]
    signal: str
    summary: str
    attention_backends: list[str]
    batch: str
    models: list[str]
    parameters: list[Parameter] = []
    claims: list[Claim] = []
    official: Official | None = None
    deviations: list[Deviation] = []
    fidelity: list[Fidelity] = []
    notes: str = ""

    def parameter_defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}


class CardError(Exception):
    """A card that cannot be read; the message names the file, the field and what to write."""


def _first_lines(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def load_card_file(path: Path) -> MethodCard:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CardError(f"{path}: not a readable YAML file ({exc}); fix the method card") from exc
    if not isinstance(data, dict):
        raise CardError(f"{path}: a method card must be a YAML mapping (name:, label:, stage:, ...)")
    try:
        card = MethodCard.model_validate(data)
    except ValidationError as exc:
        raise CardError(f"{path}: {_first_lines(exc)} (the card format is documented in lvlm_atlas/catalog/cards.py)") from None
    if card.name != path.stem:
        raise CardError(f"{path}: card name {card.name!r} must equal the file name; write name: {path.stem}")
    return card


def load_cards(cards_dir: Path = CARDS_DIR) -> dict[str, MethodCard]:
    """Every card in `cards_dir` by name (an empty dict when the folder is missing)."""
    if not cards_dir.is_dir():
        return {}
    return {p.stem: load_card_file(p) for p in sorted(cards_dir.glob("*.yaml"))}


def card_names(cards_dir: Path = CARDS_DIR) -> set[str]:
    """The runnable methods' names, from the card file names alone (cheap; no parsing)."""
    return {p.stem for p in cards_dir.glob("*.yaml")} if cards_dir.is_dir() else set()

"""Read method cards (lvlm_atlas/methods/cards/*.yaml) and measured results (catalog/benchmarks/*.json) as plain
data, without importing torch or the methods package. Both folders may be missing or empty."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lvlm_atlas.catalog.cards import CardError
from lvlm_atlas.catalog.cards import load_cards as _load_cards


class SiteDataError(Exception):
    """A method card or benchmark file the site cannot read; the message names the file and the fix."""


@dataclass(frozen=True)
class MethodCard:
    name: str
    label: str
    paper: str | None
    data: dict  # the whole card, for fields the page shows when present
    path: Path


@dataclass(frozen=True)
class BenchmarkRun:
    path: Path
    provenance: dict
    results: list[dict] = field(default_factory=list)


def load_cards(cards_dir: Path) -> dict[str, MethodCard]:
    """The method cards, validated by the card model (lvlm_atlas.catalog.cards), as the pages need them."""
    try:
        cards = _load_cards(cards_dir)
    except CardError as exc:
        raise SiteDataError(str(exc)) from None
    return {name: MethodCard(name=name, label=card.label, paper=card.paper,
                             data=card.model_dump(mode="json"), path=cards_dir / f"{name}.yaml")
            for name, card in cards.items()}


def load_benchmarks(bench_dir: Path) -> list[BenchmarkRun]:
    runs: list[BenchmarkRun] = []
    if not bench_dir.is_dir():
        return runs
    for path in sorted(bench_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SiteDataError(f"{path}: not valid JSON ({exc}); rerun `atlas bench` to rewrite it") from exc
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise SiteDataError(f"{path}: expected an object with a 'results' list (schema 1 of `atlas bench`)")
        results = [r for r in data["results"] if isinstance(r, dict)]
        prov = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
        runs.append(BenchmarkRun(path=path, provenance=prov, results=results))
    return runs

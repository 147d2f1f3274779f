"""Read method cards (methods/cards/*.yaml) and measured results (catalog/benchmarks/*.json) as plain
data, without importing torch or the methods package. Both folders may be missing or empty."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml


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
    cards: dict[str, MethodCard] = {}
    if not cards_dir.is_dir():
        return cards
    for path in sorted(cards_dir.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SiteDataError(f"{path}: not valid YAML ({exc}); fix the method card") from exc
        if not isinstance(data, dict):
            raise SiteDataError(f"{path}: a method card must be a YAML mapping (name:, label:, paper:, ...)")
        name = data.get("name", path.stem)
        if not re.fullmatch(r"[a-z0-9_]+", str(name)):
            raise SiteDataError(f"{path}: card name {name!r} must match [a-z0-9_]+ (the methods registry name)")
        if name != path.stem:
            raise SiteDataError(f"{path}: card name {name!r} must equal the file name {path.stem!r}")
        cards[name] = MethodCard(name=name, label=str(data.get("label") or name),
                                 paper=data.get("paper"), data=data, path=path)
    return cards


def load_benchmarks(bench_dir: Path) -> list[BenchmarkRun]:
    runs: list[BenchmarkRun] = []
    if not bench_dir.is_dir():
        return runs
    for path in sorted(bench_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SiteDataError(f"{path}: not valid JSON ({exc}); rerun `python -m methods bench` to rewrite it") from exc
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise SiteDataError(f"{path}: expected an object with a 'results' list (schema 1 of `python -m methods bench`)")
        results = [r for r in data["results"] if isinstance(r, dict)]
        prov = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
        runs.append(BenchmarkRun(path=path, provenance=prov, results=results))
    return runs

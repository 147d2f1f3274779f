"""Name -> method class. Torch-free: built-in methods are listed as import paths and imported on demand.

Plug-in methods (e.g. from another package) register with the `register` decorator; built-in ones are
listed in `BUILTIN` so that `python -m methods list` and the site can enumerate them without torch.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

CARDS_DIR = Path(__file__).resolve().parent / "cards"
NAME_RE = re.compile(r"^[a-z0-9_]+$")

# registry name -> "module:ClassName". Keep sorted; one module per method under methods/algorithms/.
BUILTIN: dict[str, str] = {
    "divprune": "methods.algorithms.divprune:DivPrune",
    "fastv": "methods.algorithms.fastv:FastV",
    "h2o": "methods.algorithms.h2o:H2O",
    "kivi": "methods.algorithms.kivi:KIVI",
    "look_m": "methods.algorithms.look_m:LookM",
    "pool": "methods.algorithms.pool:Pool",
    "prumerge_plus": "methods.algorithms.prumerge_plus:PruMergePlus",
    "pyramiddrop": "methods.algorithms.pyramiddrop:PyramidDrop",
    "pyramidkv": "methods.algorithms.pyramidkv:PyramidKV",
    "random": "methods.algorithms.random_prune:RandomPrune",
    "snapkv": "methods.algorithms.snapkv:SnapKV",
    "sparsemm": "methods.algorithms.sparsemm:SparseMM",
    "sparsevlm": "methods.algorithms.sparsevlm:SparseVLM",
    "streamingllm": "methods.algorithms.streamingllm:StreamingLLM",
    "visionzip": "methods.algorithms.visionzip:VisionZip",
    "vl_cache": "methods.algorithms.vl_cache:VLCache",
}

_REGISTERED: dict[str, type] = {}


class UnknownMethodError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; make it readable
        return str(self.args[0])


def register(name: str):
    """Class decorator: make a Method subclass available under `name` (lower-case, [a-z0-9_]+)."""
    if not NAME_RE.match(name):
        raise ValueError(f"method name {name!r} must match [a-z0-9_]+")

    def deco(cls):
        existing = _REGISTERED.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"method name {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        cls.name = name
        _REGISTERED[name] = cls
        return cls

    return deco


def names() -> list[str]:
    return sorted(set(BUILTIN) | set(_REGISTERED))


def get(name: str) -> type:
    """The method class registered as `name` (imports its module on first use)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise UnknownMethodError(f"unknown method {name!r}; known methods: {', '.join(names())}")
    module, _, cls_name = BUILTIN[name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    _REGISTERED.setdefault(name, cls)
    return cls


def create(name: str, **params):
    """Instantiate method `name` with keyword parameters (unknown parameters raise TypeError with the valid ones)."""
    cls = get(name)
    import dataclasses

    valid = {f.name for f in dataclasses.fields(cls) if f.init}
    bad = sorted(set(params) - valid)
    if bad:
        raise TypeError(f"method {name!r} has no parameter(s) {', '.join(bad)}; valid: {', '.join(sorted(valid))}")
    return cls(**params)


def card_path(name: str) -> Path:
    return CARDS_DIR / f"{name}.yaml"


def load_card(name: str) -> dict:
    """The method card of `name` as a dict (plain YAML, no torch)."""
    path = card_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no method card for {name!r} at {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if data.get("name") != name:
        raise ValueError(f"{path}: card name {data.get('name')!r} does not equal its file name {name!r}")
    return data


def load_cards() -> dict[str, dict]:
    return {p.stem: load_card(p.stem) for p in sorted(CARDS_DIR.glob("*.yaml"))}

"""Name -> method class.

A method is registered in exactly one place: the ``@register("name")`` decorator on its class, in
one module under ``lvlm_atlas/methods/algorithms/``. Its card ``lvlm_atlas/methods/cards/<name>.yaml``
describes it. Listing names reads the card file names (no torch); ``get`` imports the algorithm
modules on first use, which registers every built-in method. Plug-ins from other packages call
``register`` themselves.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import re

from lvlm_atlas.catalog.cards import CARDS_DIR, MethodCard, card_names, load_card_file

NAME_RE = re.compile(r"^[a-z0-9_]+$")
ALGORITHMS = "lvlm_atlas.methods.algorithms"

_REGISTERED: dict[str, type] = {}
_builtins_loaded = False


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


def load_builtins() -> dict[str, type]:
    """Import every module in lvlm_atlas.methods.algorithms (registering its methods); name -> class."""
    global _builtins_loaded
    if not _builtins_loaded:
        package = importlib.import_module(ALGORITHMS)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{ALGORITHMS}.{info.name}")
        _builtins_loaded = True
    return dict(_REGISTERED)


def names() -> list[str]:
    """Every method name: the built-in cards, plus plug-ins registered in this process (no torch import)."""
    return sorted(card_names() | set(_REGISTERED))


def get(name: str) -> type:
    """The method class registered as `name`."""
    if name not in _REGISTERED:
        load_builtins()
    if name not in _REGISTERED:
        raise UnknownMethodError(f"unknown method {name!r}; known methods: {', '.join(names())}")
    return _REGISTERED[name]


def create(name: str, **params):
    """Instantiate method `name` with keyword parameters (unknown parameters raise TypeError with the valid ones)."""
    cls = get(name)
    valid = {f.name for f in dataclasses.fields(cls) if f.init}
    bad = sorted(set(params) - valid)
    if bad:
        raise TypeError(f"method {name!r} has no parameter(s) {', '.join(bad)}; valid: {', '.join(sorted(valid))}")
    return cls(**params)


def card_path(name: str):
    return CARDS_DIR / f"{name}.yaml"


@functools.cache
def load_card(name: str) -> MethodCard:
    """The validated method card of `name` (no torch); read once per process (sweeps ask per job)."""
    path = card_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no method card for {name!r} at {path}")
    return load_card_file(path)


def load_cards() -> dict[str, MethodCard]:
    return {name: load_card(name) for name in sorted(card_names())}

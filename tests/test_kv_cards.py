"""Method cards of the KV-cache methods: plain YAML, consistent with the code and the catalog."""

from __future__ import annotations

import dataclasses
import importlib
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CARDS = ROOT / "methods" / "cards"
KV_METHODS = {
    "streamingllm": "lvlm_atlas.methods.algorithms.streamingllm:StreamingLLM",
    "h2o": "lvlm_atlas.methods.algorithms.h2o:H2O",
    "snapkv": "lvlm_atlas.methods.algorithms.snapkv:SnapKV",
    "pyramidkv": "lvlm_atlas.methods.algorithms.pyramidkv:PyramidKV",
    "look_m": "lvlm_atlas.methods.algorithms.look_m:LookM",
    "vl_cache": "lvlm_atlas.methods.algorithms.vl_cache:VLCache",
    "sparsemm": "lvlm_atlas.methods.algorithms.sparsemm:SparseMM",
    "kivi": "lvlm_atlas.methods.algorithms.kivi:KIVI",
}
REQUIRED = {"name", "label", "paper", "stage", "signal", "summary", "attention_backends", "batch", "models",
            "parameters", "claims", "notes"}


@pytest.mark.parametrize("name", sorted(KV_METHODS))
def test_card_is_complete(name):
    card = yaml.safe_load((CARDS / f"{name}.yaml").read_text(encoding="utf-8"))
    assert REQUIRED <= set(card), REQUIRED - set(card)
    assert card["name"] == name and card["stage"] == "kv"
    assert card["batch"] in ("1", "any")
    for claim in card["claims"]:
        assert {"model", "benchmark", "metric", "value", "baseline", "setting"} <= set(claim)


@pytest.mark.parametrize("name", sorted(KV_METHODS))
def test_card_parameters_are_the_method_fields(name):
    pytest.importorskip("torch")
    module, _, cls_name = KV_METHODS[name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    card = yaml.safe_load((CARDS / f"{name}.yaml").read_text(encoding="utf-8"))
    for p in card["parameters"]:
        assert p["name"] in fields, f"{name}: card parameter {p['name']!r} is not a field of {cls_name}"
        default = fields[p["name"]].default
        assert p["default"] == default, f"{name}.{p['name']}: card default {p['default']!r} != code {default!r}"


@pytest.mark.parametrize("name", sorted(set(KV_METHODS) - {"kivi"}))
def test_card_paper_is_in_the_catalog(name):
    card = yaml.safe_load((CARDS / f"{name}.yaml").read_text(encoding="utf-8"))
    papers = ROOT / "catalog" / "papers"
    if not any(papers.glob("*.yaml")):
        pytest.skip("catalog papers not merged into this checkout yet")
    assert (papers / f"{card['paper']}.yaml").is_file(), f"no catalog paper {card['paper']!r}"

"""Method cards and the registry are plain data: readable without torch, consistent with each other."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from methods import registry
from methods.stages import Stage

ROOT = Path(__file__).resolve().parent.parent
CARD_KEYS = {"name", "label", "paper", "stage", "signal", "summary", "attention_backends", "batch", "models",
             "parameters", "claims", "notes"}


def test_importing_methods_and_reading_cards_does_not_import_torch():
    code = ("import sys, methods; methods.load_cards(); methods.names(); "
            "import methods.commands.list; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_method_has_a_complete_card(name):
    card = registry.load_card(name)
    assert set(card) == CARD_KEYS
    assert Stage(card["stage"])
    assert card["batch"] in ("1", "any")
    assert set(card["attention_backends"]) <= {"sdpa", "eager", "flash_attention_2"}
    for claim in card["claims"]:
        assert {"model", "benchmark", "metric", "value", "baseline", "setting"} <= set(claim)
    for p in card["parameters"]:
        assert {"name", "type", "default", "description"} <= set(p)


@pytest.mark.parametrize("name", registry.names())
def test_card_matches_the_implementation(name):
    import dataclasses

    pytest.importorskip("torch")
    cls = registry.get(name)
    card = registry.load_card(name)
    assert card["stage"] == cls.stage.value
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    for p in card["parameters"]:
        assert p["name"] in fields, f"card parameter {p['name']} is not a field of {cls.__name__}"
        assert p["default"] == fields[p["name"]]


def test_cards_dir_has_no_orphans():
    assert {p.stem for p in registry.CARDS_DIR.glob("*.yaml")} == set(registry.names())


def test_card_name_must_equal_file_name(tmp_path, monkeypatch):
    (tmp_path / "foo.yaml").write_text("name: bar\n")
    monkeypatch.setattr(registry, "CARDS_DIR", tmp_path)
    with pytest.raises(ValueError, match="does not equal"):
        registry.load_card("foo")


def test_unknown_method_and_bad_parameters_are_explained():
    with pytest.raises(registry.UnknownMethodError, match="known methods"):
        registry.get("nope")
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match="valid:"):
        registry.create("fastv", kk=3)


def test_register_rejects_bad_and_duplicate_names():
    with pytest.raises(ValueError):
        registry.register("Bad-Name")

    @registry.register("test_dummy_method")
    class A:
        pass

    with pytest.raises(ValueError, match="already registered"):
        @registry.register("test_dummy_method")
        class B:
            pass
    registry._REGISTERED.pop("test_dummy_method")

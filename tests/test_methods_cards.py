"""Method cards and the registry: cards are validated data readable without torch; every built-in method
is registered once (its decorator) and has exactly one card that matches its code."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from lvlm_atlas.catalog.cards import CardError, MethodCard, load_card_file, load_cards
from lvlm_atlas.methods import registry

ROOT = Path(__file__).resolve().parent.parent


def test_importing_methods_and_reading_cards_does_not_import_torch():
    code = ("import sys, lvlm_atlas.methods as methods; methods.load_cards(); methods.names(); "
            "import lvlm_atlas.cli.list; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_card_validates():
    cards = load_cards()
    assert len(cards) >= 16 and all(isinstance(c, MethodCard) for c in cards.values())


def test_cards_and_registered_methods_are_the_same_set():
    pytest.importorskip("torch")
    assert set(registry.load_builtins()) == {p.stem for p in registry.CARDS_DIR.glob("*.yaml")}


@pytest.mark.parametrize("name", registry.names())
def test_card_matches_the_implementation(name):
    pytest.importorskip("torch")
    cls = registry.get(name)
    card = registry.load_card(name)
    assert card.stage == cls.stage.value
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    for p in card.parameters:
        assert p.name in fields, f"card parameter {p.name} is not a field of {cls.__name__}"
        assert p.default == fields[p.name], f"{name}.{p.name}: card default {p.default!r} != code {fields[p.name]!r}"


@pytest.mark.parametrize("name", registry.names())
def test_card_paper_is_in_the_catalog(name):
    card = registry.load_card(name)
    if card.paper is not None:
        assert (ROOT / "catalog" / "papers" / f"{card.paper}.yaml").is_file(), f"no catalog paper {card.paper!r}"


def test_card_errors_name_the_file_and_field(tmp_path):
    (tmp_path / "foo.yaml").write_text("name: bar\n")
    with pytest.raises(CardError, match=r"foo.yaml: label: Field required"):
        load_card_file(tmp_path / "foo.yaml")
    good = registry.load_card("fastv").model_dump(mode="json")
    import yaml

    (tmp_path / "foo.yaml").write_text(yaml.safe_dump(dict(good, name="bar")))
    with pytest.raises(CardError, match="must equal the file name; write name: foo"):
        load_card_file(tmp_path / "foo.yaml")
    (tmp_path / "foo.yaml").write_text(yaml.safe_dump(dict(good, name="foo", colour="red")))
    with pytest.raises(CardError, match="colour: Extra inputs are not permitted"):
        load_card_file(tmp_path / "foo.yaml")
    (tmp_path / "foo.yaml").write_text(yaml.safe_dump(dict(good, name="foo", stage="cache")))
    with pytest.raises(CardError, match="stage: Input should be"):
        load_card_file(tmp_path / "foo.yaml")


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

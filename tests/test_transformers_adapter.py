"""The transformers adapter: the one module that touches the library's internals, and the guards that make
a version mismatch fail loudly instead of reporting zeros. Runs under both ends of the supported range
(`make test` with the lock's newest transformers, `make test-compat` with 5.17)."""
from __future__ import annotations

import pathlib
import re

import pytest
import torch

pytest.importorskip("transformers")

from lvlm_atlas.methods import harness, registry  # noqa: E402
from lvlm_atlas.methods.algorithms.snapkv import SnapKV  # noqa: E402
from lvlm_atlas.methods.transformers_adapter import (CACHE_NAMES, DynamicCache, ModelAdapter,  # noqa: E402
                                                     UnsupportedModelError, cache_kwargs, cache_name, cache_of,
                                                     check_cache_argument, output_cache, past_length, set_cache)
from tests.methods_util import bundle, inputs  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_cache_is_found_under_either_name_and_passed_under_the_models_own():
    c = DynamicCache()
    assert cache_of({"cache": c}) is c and cache_of({"past_key_values": c}) is c and cache_of({}) is None
    b = bundle("tiny-llava")
    lm = ModelAdapter.of(b.model).language_model
    name = cache_name(lm)
    assert name in CACHE_NAMES
    kwargs = set_cache(lm, {"past_key_values": None, "cache": None}, c)
    assert kwargs == {name: c}
    assert cache_kwargs(b.model, c) == {cache_name(b.model): c} and cache_kwargs(b.model, None) == {}
    assert past_length({name: c}) == 0


def test_model_output_cache_is_read_back():
    b = bundle("tiny-llava")
    out = b.model(**inputs(b), use_cache=True)
    c = output_cache(out)
    assert c is not None and c.get_seq_length() == inputs(b)["input_ids"].shape[1]


def test_an_unknown_cache_name_fails_loudly():
    with pytest.raises(UnsupportedModelError, match="received its KV cache as 'kv_store'"):
        check_cache_argument(torch.nn.Linear(1, 1), {"kv_store": DynamicCache()})
    check_cache_argument(torch.nn.Linear(1, 1), {"cache": DynamicCache(), "past_key_values": None})


def test_no_module_outside_the_adapter_reaches_into_transformers():
    """Internals (private attributes, cache argument names, library submodules) appear in one module only."""
    allowed = {"transformers_adapter.py"}
    pattern = re.compile(r"from transformers\.|\._attn_implementation\b|[\"']past_key_values[\"']|past_key_values=")
    offenders = []
    for sub in ("methods", "kernels"):
        for p in (ROOT / "lvlm_atlas" / sub).rglob("*.py"):
            if p.name not in allowed and pattern.search(p.read_text(encoding="utf-8")):
                offenders.append(str(p.relative_to(ROOT)))
    assert offenders == []


def test_pixel_values_without_image_tokens_is_an_error_not_zero_tokens():
    b = bundle("tiny-llava")
    inp = dict(inputs(b))
    ids = inp["input_ids"].clone()
    ids[ids == ModelAdapter.of(b.model).image_token_id] = 1
    inp["input_ids"] = ids
    with registry.create("fastv", budget=8).apply(b.model):
        with pytest.raises(ValueError, match="pixel_values but its input_ids hold no image token"):
            b.model(**inp)


@pytest.mark.parametrize("name", ["fastv", "visionzip", "pyramiddrop"])
def test_token_methods_report_the_visual_tokens_they_saw_and_kept(name):
    b = bundle("tiny-llava")
    with registry.create(name, budget=8).apply(b.model) as s:
        res = harness.greedy_generate(b.model, inputs(b), max_new_tokens=4)
    assert len(res.tokens) == 4
    assert s.last.visual_before == ModelAdapter.of(b.model).layout(inputs(b)["input_ids"], {}).n_visual > 8
    assert 0 < s.last.visual_after <= 8   # pyramiddrop keeps 8 at its first stage and fewer later


def test_kv_methods_evict_and_an_inert_policy_is_an_error():
    b = bundle("tiny-llava")
    m = SnapKV(budget=0.25, window=4)
    with m.apply(b.model):
        harness.greedy_generate(b.model, inputs(b), max_new_tokens=3)
    assert all(layer.evicted > 0 for layer in m.kv.cache.layers)

    class Inert(SnapKV):
        def on_prefill(self, ctx):  # a broken policy: keeps everything
            return None

    with Inert(budget=0.25, window=4).apply(b.model):
        with pytest.raises(RuntimeError, match="no layer evicted anything"):
            harness.greedy_generate(b.model, inputs(b), max_new_tokens=3)

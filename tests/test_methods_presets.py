"""Model presets and loading: tiny random presets, the from_pretrained path (offline, local directory), backends."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from lvlm_atlas.methods import harness, presets, registry  # noqa: E402
from tests.methods_util import TINY, bundle, inputs, noise_image  # noqa: E402

EXPECTED_VISUAL = {"tiny-llava": 64, "tiny-qwen2-vl": 32, "tiny-qwen2.5-vl": 32}


@pytest.mark.parametrize("name", TINY)
def test_tiny_presets_build_and_expand_image_tokens(name):
    b = bundle(name)
    inp = inputs(b)
    n = int((inp["input_ids"] == b.model.config.image_token_id).sum())
    assert n == EXPECTED_VISUAL.get(name, n) and n > 0
    assert b.attn_implementation == "sdpa" and b.info["weights"] == "random"
    out = b.model(**inp)
    assert out.logits.shape[:2] == inp["input_ids"].shape


def test_attention_backend_choice(monkeypatch):
    assert presets.attention_backend("eager", "cuda") == "eager"
    assert presets.attention_backend(None, "cpu") == "sdpa"
    monkeypatch.setattr(presets.importlib.util, "find_spec", lambda name: object() if name == "flash_attn" else None)
    assert presets.attention_backend(None, "cuda") == "flash_attention_2"
    assert presets.attention_backend(None, "cpu") == "sdpa"


def test_unknown_model_name_is_explained():
    with pytest.raises(ValueError, match="preset"):
        presets.load("no-such-model")


def test_real_size_presets_are_the_published_architectures():
    cfg = presets.PRESETS["llava-1.5-7b@random"].build_config()
    t, v = cfg.text_config, cfg.vision_config
    assert (t.hidden_size, t.num_hidden_layers, t.intermediate_size, t.vocab_size) == (4096, 32, 11008, 32064)
    assert (v.hidden_size, v.num_hidden_layers, v.image_size, v.patch_size) == (1024, 24, 336, 14)
    mid = presets.PRESETS["mid-llava@random"].build_config()
    assert (mid.text_config.num_hidden_layers, mid.text_config.hidden_size) == (16, 1024)
    assert (mid.vision_config.image_size // mid.vision_config.patch_size) ** 2 == 576


def test_pretrained_loading_path_with_a_processor(tmp_path):
    """The hub code path (from_pretrained + AutoProcessor), exercised offline on a saved tiny checkpoint."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlavaProcessor, PreTrainedTokenizerFast

    src = presets.load("tiny-llava")
    vocab = {f"<0x{i:02X}>": i + 3 for i in range(256)} | {"<unk>": 0, "<s>": 1, "</s>": 2}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    tok.decoder = decoders.ByteFallback()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    src.model.config.image_token_id = fast.convert_tokens_to_ids("<image>")
    proc = LlavaProcessor(image_processor=src.image_processor, tokenizer=fast, patch_size=14,
                          vision_feature_select_strategy="default", image_token="<image>",
                          num_additional_image_tokens=1)
    src.model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    b = presets.load(str(tmp_path))
    assert b.family == "llava" and b.info["weights"] == "pretrained" and b.processor is not None
    inp = b.inputs(noise_image(), "What is it?")
    assert int((inp["input_ids"] == b.model.config.image_token_id).sum()) == 64
    with registry.create("visionzip", budget=8).apply(b.model) as s:
        r = harness.greedy_generate(b.model, inp, max_new_tokens=2, eos_token_id=b.eos_token_id)
    assert (s.last.visual_before, s.last.visual_after) == (64, 8) and isinstance(b.decode(r.tokens), str)
    torch.testing.assert_close(b.model.lm_head.weight, src.model.lm_head.weight)

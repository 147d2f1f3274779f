"""SparseMM: head-level KV budgets from visual-head scores, in a rectangular cache with masked padding."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lvlm_atlas.methods import registry  # noqa: E402
from lvlm_atlas.methods.algorithms.sparsemm import SparseMM, head_budgets  # noqa: E402
from lvlm_atlas.methods.kv import attention_route  # noqa: E402
from lvlm_atlas.methods.kv.evict import group_scores  # noqa: E402
from lvlm_atlas.methods.kv.layers import EvictableLayer  # noqa: E402
from lvlm_atlas.methods.kv.visual_heads import VisualHeadScores, ocr_token_regions, probe_visual_heads  # noqa: E402
from tests.methods_util import bundle, inputs  # noqa: E402

NEW = 4


def _generate(model, inp, method=None, new=NEW):
    def go():
        return model.generate(**inp, max_new_tokens=new, do_sample=False, output_scores=True,
                              return_dict_in_generate=True)

    with torch.no_grad():
        if method is None:
            return go()
        with method.apply(model):
            out = go()
            out.route_counts = dict(method.kv.fused.counts) if method.kv.fused is not None else None
            return out


def _score_file(tmp_path, model, hot: tuple[int, int]) -> str:
    cfg = model.model.language_model.config
    scores = torch.full((cfg.num_hidden_layers, cfg.num_attention_heads), 0.01, dtype=torch.float64)
    scores[hot] = 5.0
    path = tmp_path / "heads.json"
    VisualHeadScores(scores, "tiny", 1).save(path)
    return str(path)


def test_head_budgets_total_caps_and_visual_preference():
    scores = torch.tensor([[0.0, 0.0, 0.0], [0.0, 9.0, 1.0]])
    b = head_budgets(scores, capacity=20, prompt_len=50, window=4, uniform_ratio=0.25)
    assert int(b.sum()) == 6 * 20
    base = 4 + int(0.25 * 16)
    assert int(b.min()) == base and int(b.max()) <= 50
    assert int(b[1, 1]) == int(b.max()) and int(b[1, 1]) > int(b[1, 2]) > base
    # the hot head is capped at the prompt length; what it cannot take goes to the next-best head
    b = head_budgets(torch.tensor([[100.0, 1.0, 0.0, 0.0]]), capacity=30, prompt_len=40, window=4, uniform_ratio=0.0)
    assert b.tolist() == [[40, 40, 20, 20]]
    assert torch.equal(head_budgets(torch.zeros(2, 2), 10, 40, 4, 0.1), torch.full((2, 2), 10))
    with pytest.raises(ValueError, match="uniform_ratio"):
        SparseMM(uniform_ratio=1.5)


@pytest.mark.parametrize("model_name", ["tiny-llava", "tiny-qwen2-vl"])
def test_budget_one_equals_baseline_exactly(model_name):
    b = bundle(model_name)
    inp = inputs(b)
    base = _generate(b.model, inp)
    out = _generate(b.model, inp, SparseMM(budget=1.0, window=4))
    assert torch.equal(out.sequences, base.sequences)
    assert all(torch.equal(x, y) for x, y in zip(out.scores, base.scores))
    assert b.model.model.language_model.config._attn_implementation == "sdpa"


def test_budget_respected_per_head_and_visual_head_gets_the_most(tmp_path):
    b = bundle("tiny-llava")
    inp = inputs(b)
    n = inp["input_ids"].shape[1]
    cfg = b.model.model.language_model.config
    hkv, group = cfg.num_key_value_heads, cfg.num_attention_heads // cfg.num_key_value_heads
    path = _score_file(tmp_path, b.model, (2, group))            # query head `group` -> KV head 1 of layer 2
    m = SparseMM(budget=0.25, window=4, head_scores=path, allocation="exact")   # exact total
    out = _generate(b.model, inp, m)
    assert len(out.scores) == NEW
    budgets = m._request.stats["sparsemm_budgets"]
    cap = round(0.25 * n)
    assert int(budgets.sum()) == cfg.num_hidden_layers * hkv * cap
    assert budgets.argmax() == 2 * hkv + 1 and int(budgets[2, 1]) > 2 * cap
    for i, layer in enumerate(m.kv.cache.layers):
        # every head attends to exactly its budget of prompt entries plus the tokens decoded since
        assert layer.held_per_head()[0].tolist() == (budgets[i] + NEW - 1).tolist()
        assert layer.held == int(budgets[i].max()) + NEW - 1
    ragged = sum(int(budgets[i].min()) < int(budgets[i].max()) for i in range(cfg.num_hidden_layers))
    assert ragged > 0
    assert out.route_counts["head_masked"] == (NEW - 1) * ragged    # every decode step of a padded layer
    assert m._request.stats["sparsemm_score_source"] == "file"


def test_each_head_keeps_its_own_top_window_votes():
    """The kept (non-padding) entries of each head are its top-budget entries by the naive window votes."""
    b = bundle("tiny-llava", attn="eager")
    inp = inputs(b)
    n = inp["input_ids"].shape[1]
    with torch.no_grad():
        attentions = b.model(**inp, output_attentions=True).attentions
    m = SparseMM(budget=20, window=6, kernel=1, allocation="exact")   # ragged heads
    with m.apply(b.model), torch.no_grad():
        b.model(**inp, use_cache=True)
    budgets = m._request.stats["sparsemm_budgets"]
    assert len(set(budgets.flatten().tolist())) > 1               # the heads really differ
    for i, layer in enumerate(m.kv.cache.layers):
        votes = group_scores(attentions[i][0][:, -6:].sum(1)[None], layer.keys.shape[1], "mean")[0]
        valid = layer.valid if layer.valid is not None else torch.ones_like(layer.positions, dtype=torch.bool)
        for h in range(layer.keys.shape[1]):
            forced = set(range(n - 6, n))
            rest = sorted((j for j in range(n) if j not in forced), key=lambda j: (-float(votes[h, j]), j))
            k = int(budgets[i, h]) - len(forced)
            want = forced | set(rest[:k])
            got = set(layer.positions[0, h][valid[0, h]].tolist())
            diff = got ^ want
            assert all(abs(float(votes[h, j]) - float(votes[h, rest[k - 1]])) < 1e-5 for j in diff), (i, h, diff)


def test_padding_entries_get_no_attention(tmp_path):
    b = bundle("tiny-llava")
    lm = b.model.model.language_model
    attn = lm.layers[0].self_attn
    g = torch.Generator().manual_seed(0)
    hkv, hq, d = lm.config.num_key_value_heads, lm.config.num_attention_heads, attn.head_dim
    k, v = torch.randn(1, hkv, 10, d, generator=g), torch.randn(1, hkv, 10, d, generator=g)
    layer = EvictableLayer()
    layer.update(k, v)
    valid = torch.ones(1, hkv, 10, dtype=torch.bool)
    valid[0, 0, 6:] = False                                        # KV head 0 owns only 6 entries
    layer.keep(torch.arange(10).expand(1, hkv, 10), valid)
    q = torch.randn(1, hq, 1, d, generator=g)
    route = attention_route.KVAttentionRoute(b.model, lm, lambda i: layer).open()
    try:
        got, _ = attention_route.kv_attention(attn, q, layer.keys, layer.values, None, scaling=attn.scaling)
    finally:
        route.close()
    group = hq // hkv
    for h in range(hq):
        kv = h // group
        own = valid[0, kv]
        p = torch.softmax((q[0, h, 0] @ k[0, kv, own].T) * attn.scaling, -1)
        torch.testing.assert_close(got[0, 0, h], p @ v[0, kv, own])
    assert lm.config._attn_implementation == "sdpa"


def test_probe_scores_match_naive_eager_attention_hits():
    b = bundle("tiny-llava", attn="eager")
    inp = inputs(b)
    vis = (inp["input_ids"][0] == b.model.config.image_token_id).nonzero().squeeze(1)
    region = vis[: vis.numel() // 3]
    hot_tokens = set()

    def region_of(token):
        return region if token % 2 == 0 else None               # stand-in for "token lies in one OCR box"

    got = probe_visual_heads(b.model, [(inp, region_of)], max_new_tokens=5)
    cfg = b.model.model.language_model.config
    want = torch.zeros(cfg.num_hidden_layers, cfg.num_attention_heads, dtype=torch.float64)
    ids, am = inp["input_ids"], inp["attention_mask"]
    extra = {k: v for k, v in inp.items() if k not in ("input_ids", "attention_mask")}
    with torch.no_grad():
        for _ in range(5):                                         # recompute without cache, eager weights
            out = b.model(input_ids=ids, attention_mask=am, output_attentions=True, **extra)
            token = int(out.logits[0, -1].argmax())
            if token % 2 == 0:
                hot_tokens.add(token)
                for l, att in enumerate(out.attentions):
                    top = att[0, :, -1].argmax(-1)
                    want[l] += torch.isin(top, region).double() / region.numel()
            ids = torch.cat([ids, torch.tensor([[token]])], 1)
            am = torch.cat([am, am.new_ones(1, 1)], 1)
    assert hot_tokens, "the greedy tokens never hit the stand-in region; pick another rule"
    torch.testing.assert_close(got.scores, want)
    assert got.samples == 1


def test_score_file_roundtrip_and_errors(tmp_path):
    s = VisualHeadScores(torch.tensor([[1.0, 0.0, 2.0, 3.0]]), "m", 3)
    p = tmp_path / "s.json"
    s.save(p)
    back = VisualHeadScores.load(p)
    assert torch.equal(back.scores, s.scores) and back.samples == 3
    assert back.kv_head_scores(2).tolist() == [[1.0, 5.0]]
    p.write_text(json.dumps({"schema": 1, "scores": [[1.0], [1.0, 2.0]]}))
    with pytest.raises(ValueError, match="rectangular"):
        VisualHeadScores.load(p)
    with pytest.raises(FileNotFoundError, match="probe_visual_heads"):
        SparseMM(head_scores=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="probe this model"):
        s.check_shape(4, 4)


def test_ocr_regions_follow_boxes_and_need_a_unique_chunk():
    vis = torch.arange(100, 116)                                   # 4 x 4 grid of image tokens
    words = {1: "cat", 2: "a", 3: "dog"}
    region_of = ocr_token_regions(words.__getitem__, [("cat", (0, 0, 9, 9)), ("a dog", (20, 20, 39, 39))],
                                  (40, 40), (4, 4), vis)
    assert region_of(1).tolist() == [100]
    assert sorted(region_of(3).tolist()) == [110, 111, 114, 115]
    assert region_of(2) is None                                    # "a" occurs in both chunks


def test_registered_with_card():
    assert registry.get("sparsemm") is SparseMM
    card = registry.load_card("sparsemm")
    assert card.paper == "sparsemm" and card.stage == "kv"


def test_combines_with_the_quantized_cache():
    b = bundle("tiny-llava")
    inp = inputs(b)
    kw = dict(budget=0.3, window=4, kv_bits=4, kv_group=16, kv_residual=16, allocation="exact")
    fused = _generate(b.model, inp, SparseMM(**kw), new=5)
    plain = _generate(b.model, inp, SparseMM(kv_fused_decode=False, **kw), new=5)
    # padded layers take the masked base path; the others attend on the packed cache
    assert fused.route_counts["fused"] > 0 and fused.route_counts["head_masked"] > 0
    assert plain.route_counts["fused"] == 0 and plain.route_counts["head_masked"] == fused.route_counts["head_masked"]
    assert torch.equal(fused.sequences, plain.sequences)
    for x, y in zip(fused.scores, plain.scores):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)

"""Unit tests of the ingestion building blocks: ids, links, dedup, config, naming, classifier, relevance."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from lvlm_atlas.ingest.classify import Classifier, Example
from lvlm_atlas.ingest.config import ConfigError, load_config
from lvlm_atlas.ingest.dedup import DedupIndex, Known, normalise_title
from lvlm_atlas.ingest.evaluate import LABELLED, relevance_eval
from lvlm_atlas.ingest.record import ArxivRecord, clean_doi, code_links, split_arxiv_id
from lvlm_atlas.ingest.rejected import Rejection, add_rejection, load_rejected
from lvlm_atlas.ingest.write import choose_id, short_name, slugify
from lvlm_atlas import paths
from lvlm_atlas.catalog.taxonomy import load_taxonomy

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("raw, expected", [
    ("2403.06764", ("2403.06764", None)),
    ("2403.06764v12", ("2403.06764", 12)),
    ("http://arxiv.org/abs/2403.06764v2", ("2403.06764", 2)),
    ("https://arxiv.org/pdf/2403.06764v1.pdf", ("2403.06764", 1)),
    ("arXiv:1706.03762", ("1706.03762", None)),
    ("cs/0601001v1", ("cs/0601001", 1)),
    ("http://arxiv.org/abs/math.GT/0309136v2", ("math.GT/0309136", 2)),
])
def test_split_arxiv_id(raw, expected):
    assert split_arxiv_id(raw) == expected


@pytest.mark.parametrize("raw", ["1234", "2413.0001", "not-an-id", "cs/06010"])
def test_split_arxiv_id_rejects_garbage(raw):
    with pytest.raises(ValueError, match="not an arXiv id"):
        split_arxiv_id(raw)


def test_code_links_and_doi():
    text = ("Code: https://github.com/a-b/c.d. Models at huggingface.co/org/model-7b, see "
            "(https://gitlab.com/x/y.git); profile https://github.com/someone")
    assert code_links(text, "Also https://github.com/a-b/c.d") == [
        "https://github.com/a-b/c.d", "https://huggingface.co/org/model-7b", "https://gitlab.com/x/y"]
    assert clean_doi("https://doi.org/10.1109/CVPR.2024.001") == "10.1109/CVPR.2024.001"
    assert clean_doi("not a doi") is None


def test_dedup_by_id_doi_title_and_near_duplicate():
    idx = DedupIndex()
    idx.add(Known("catalog entry fastv", arxiv="2403.06764", doi="10.1007/ABC.1",
                  title="An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference Acceleration for Large Vision-Language Models"))
    assert idx.match("2403.06764", None, "x")[1] == "same arXiv id 2403.06764"
    assert idx.match(None, "10.1007/abc.1", "x")[1] == "same DOI 10.1007/abc.1"
    assert idx.match(None, None, "An image is worth 1/2 tokens after layer 2 -- plug and play inference "
                     "acceleration for large vision language models")[1] == "same title"
    near = idx.match(None, None, "An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference "
                     "Acceleration for Large Vision-Language Model")
    assert near and near[1].startswith("near-duplicate title")
    assert idx.match("2501.00001", None, "An Image is Worth 1/4 Tokens: Pruning for Diffusion Transformers") is None
    assert normalise_title("Ünïcode  Tïtle!") == "unicode title"


def test_rejected_list_roundtrip(tmp_path):
    path = tmp_path / "ingest-rejected.yaml"
    assert load_rejected(path) == []
    assert add_rejection(Rejection("2611.00001", "A title", "off-topic", dt.date(2026, 11, 21)), path)
    assert not add_rejection(Rejection("2611.00001", None, None, None), path)
    (r,) = load_rejected(path)
    assert (r.arxiv, r.reason) == ("2611.00001", "off-topic")
    path.write_text("rejected:\n  - arxiv: 99\n")
    with pytest.raises(ValueError, match="rejected\\[0\\]"):
        load_rejected(path)


def test_config_errors_name_the_problem(tmp_path):
    tax = load_taxonomy()
    raw = yaml.safe_load(Path("catalog/ingest.yaml").read_text())
    raw["queries"][0]["node"] = "prefilling/token-compresion"
    bad = tmp_path / "ingest.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="unknown taxonomy node 'prefilling/token-compresion'"):
        load_config(bad, taxonomy=tax)
    raw["queries"][0] = {"node": "prefilling", "terms": ['say "hi"']}
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="double quotes"):
        load_config(bad, taxonomy=tax)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_search_query_has_categories_terms_context_and_window():
    cfg = load_config(taxonomy=load_taxonomy())
    spec = next(q for q in cfg.queries if q.context)
    q = cfg.search_query(spec, dt.date(2026, 1, 2), dt.date(2026, 1, 3))
    assert q.startswith("(cat:cs.CV OR ")
    assert f'ti:"{spec.terms[0]}" OR abs:"{spec.terms[0]}"' in q
    assert 'abs:"vision-language"' in q
    assert q.endswith("submittedDate:[202601020000 TO 202601032359]")


def _record(title: str, authors=("Ana Lopez",)) -> ArxivRecord:
    return ArxivRecord(arxiv_id="2611.00042", version=1, title=title, authors=authors, abstract="",
                       published=dt.date(2026, 11, 1), updated=dt.date(2026, 11, 1))


def test_names_and_ids():
    assert short_name("FastV: An Image is Worth 1/2 Tokens") == "FastV"
    assert short_name("Token Merging: Your ViT But Faster") == "Token Merging"
    long = short_name("Why and When Visual Token Pruning Fails in Multimodal Large Language Models")
    assert long == "Why and When Visual Token Pruning..." and len(long) <= 60
    rec = _record("FastV: Something")
    assert choose_id("FastV", rec, set()) == "fastv"
    assert choose_id("FastV", rec, {"fastv"}) == "fastv-lopez"
    assert choose_id("FastV", rec, {"fastv", "fastv-lopez"}) == "fastv-2611-00042"
    assert slugify("Qwen2.5-VL: été") == "qwen2-5-vl-ete"


def _example(i, node, text, **kw):
    base = dict(bottleneck=("compute",), granularity=("token",), modality=("general",), scenario=("static",),
                training_free=True, kind="method")
    base.update(kw)
    return Example(id=f"p{i}", text=text, placements=((node, True),), **base)


def test_classifier_separates_where_methods_act():
    tax = load_taxonomy()
    cfg = load_config(taxonomy=tax)
    examples = [
        _example(1, "decoding/kv-cache-compression/token-level", "Evict KV cache entries of visual tokens during decoding to save memory",
                 bottleneck=("memory-capacity",)),
        _example(2, "decoding/kv-cache-compression/bit-level", "Quantize the KV cache keys and values to 2 bits",
                 bottleneck=("memory-capacity",), granularity=("bit",)),
        _example(3, "prefilling/token-compression/attention-guided", "Drop visual tokens with low text attention after layer 2 of the LLM"),
        _example(4, "encoding/token-compression/attention-aware", "Prune patches inside the vision encoder using CLS attention"),
        _example(5, "decoding/speculative-decoding/training-aware", "Train a draft model for speculative decoding of VLMs",
                 bottleneck=("latency",), granularity=("step",), training_free=False),
    ]
    clf = Classifier(tax, examples, cfg.node_terms, cfg.node_cues)
    kv = clf.classify("CacheTrim: visual KV cache eviction for multimodal LLMs",
                      "We evict low-attention visual entries from the KV cache during decoding, training-free.")
    assert kv.primary.startswith("decoding/kv-cache-compression") and kv.stage == "decoding"
    assert kv.training_free is True and "memory-capacity" in kv.bottleneck
    assert any("kv cache" in t for t in kv.matched_terms[kv.primary])
    enc = clf.classify("ClsPrune", "We prune visual tokens inside the vision encoder with the [CLS] attention before the LLM.")
    assert enc.stage == "encoding"
    spec = clf.classify("DraftVL", "Speculative decoding for video LLMs: we fine-tune a small draft model on video data.")
    assert spec.primary.startswith("decoding/speculative-decoding") and spec.training_free is False
    assert spec.modality == ["video"]
    assert 0.0 <= spec.confidence <= 1.0 and spec.neighbours[0][0] == "p5"


def test_relevance_filter_on_the_labelled_set():
    """Precision/recall of the relevance filter with a classifier trained on the fixture catalog only."""
    from lvlm_atlas.ingest.corpus import load_papers
    tax = load_taxonomy()
    cfg = load_config(taxonomy=tax)
    papers = load_papers([DATA / "ingest_catalog"], tax)
    clf = Classifier.from_papers(tax, papers, cfg)
    res = relevance_eval(LABELLED, cfg.relevance, clf)
    assert res["on"] >= 25 and res["off"] >= 30
    assert res["precision"] >= 0.9 and res["recall"] >= 0.9, res["errors"]


def test_merging_the_branch_rejections(tmp_path):
    from lvlm_atlas.ingest.rejected import main as rejected_main
    ours, theirs = tmp_path / "ours.yaml", tmp_path / "theirs.yaml"
    add_rejection(Rejection("2611.00001", None, "a", None), ours)
    add_rejection(Rejection("2611.00001", None, "a", None), theirs)
    add_rejection(Rejection("cs/0601001", "Old", "b", None), theirs)
    assert rejected_main(["--merge", str(theirs), "--into", str(ours)]) == 0
    assert [r.arxiv for r in load_rejected(ours)] == ["2611.00001", "cs/0601001"]


def test_inside_word_phrases_and_title_cues_config(tmp_path):
    from lvlm_atlas.ingest.text import matched_terms
    assert matched_terms("StreamingBench: streaming video", ["*bench"]) == ["*bench"]
    assert matched_terms("StreamingBench: streaming video", ["bench"]) == []       # word start only
    cfg = load_config(taxonomy=load_taxonomy())
    assert "*bench" in cfg.title_cues["resources/benchmarks"]
    assert "serving" in cfg.title_cues["system/serving"]
    bad = tmp_path / "ingest.yaml"
    text = (paths.CATALOG / "ingest.yaml").read_text(encoding="utf-8")
    bad.write_text(text + "\n  no/such-node: [x]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="title_cues names unknown taxonomy node 'no/such-node'"):
        load_config(bad, taxonomy=load_taxonomy())


def test_title_cue_routes_a_benchmark_named_only_in_its_title():
    """The body reads like a video method; the title names a benchmark: the title cue decides the stage."""
    tax = load_taxonomy()
    cfg = load_config(taxonomy=tax)
    examples = [
        _example(1, "encoding/keyframe-selection/training-free", "Select key frames of long videos for video LLMs"),
        _example(2, "encoding/keyframe-selection/training-free", "Frame selection picks query-relevant video frames"),
        _example(3, "resources/benchmarks/video", "A benchmark of questions about long videos", kind="benchmark"),
    ]
    title, body = "LongFrameBench: long videos", "Questions about selected key frames of long videos for video LLMs."
    plain = Classifier(tax, examples, cfg.node_terms, cfg.node_cues)
    assert plain.classify(title, body).stage == "encoding"
    cued = Classifier(tax, examples, cfg.node_terms, cfg.node_cues, title_cues=cfg.title_cues)
    res = cued.classify(title, body)
    assert res.stage == "resources" and res.primary.startswith("resources/benchmarks")
    assert "title: bench" in res.matched_terms[res.primary]
    assert set(res.stage_scores) >= {"encoding", "resources"}
    assert res.stage_scores["resources"] > res.stage_scores["encoding"]
    # Title cues look at the title only: the same word in the body does not fire.
    assert "title: bench" not in cued.classify("FrameSel", "We bench-test on LongFrameBench.").matched_terms.get(
        "resources/benchmarks/video", [])


def test_evaluation_split_is_fixed_disjoint_and_complete():
    from lvlm_atlas.ingest.evaluate import split_halves
    examples = [_example(i, "prefilling/token-compression", f"paper {i}") for i in range(11)]
    a, b = split_halves(examples, seed=3)
    assert len(a) == 5 and len(b) == 6
    assert {e.id for e in a} | {e.id for e in b} == {e.id for e in examples} and not {e.id for e in a} & {e.id for e in b}
    assert {e.id for e in split_halves(list(reversed(examples)), seed=3)[0]} == {e.id for e in a}   # order-free
    assert {e.id for e in split_halves(examples, seed=4)[0]} != {e.id for e in a}


def test_stage_margin_flags_uncertain_stage_and_selective_accuracy():
    from lvlm_atlas.ingest.classify import Classification
    from lvlm_atlas.ingest.evaluate import selective_accuracy

    def cls(scores):
        stage = max(scores, key=scores.get)
        return Classification(primary=f"{stage}/x", confidence=0.5, node_scores=[], secondary=[], stage=stage,
                              kind="method", bottleneck=[], granularity=[], modality=[], scenario=[],
                              training_free=None, stage_scores=scores)
    close = cls({"encoding": 0.50, "prefilling": 0.48, "decoding": 0.1})
    assert close.stage_margin == pytest.approx(0.04) and close.runner_up_stage() == "prefilling"
    assert any(r.startswith("stage uncertain: encoding only just ahead of prefilling") for r in close.reasons())
    clear = cls({"encoding": 0.9, "prefilling": 0.1})
    assert clear.stage_margin == pytest.approx(0.8889, abs=1e-3)
    assert not any(r.startswith("stage uncertain") for r in clear.reasons())
    # The most certain 50% are both right, the rest wrong.
    acc = selective_accuracy([(0.9, True), (0.1, False), (0.8, True), (0.05, False)], coverages=(1.0, 0.5))
    assert acc == {1.0: 0.5, 0.5: 1.0}

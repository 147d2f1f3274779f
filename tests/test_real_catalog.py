"""The committed catalog: valid, large enough, and in agreement with the ACL survey (arXiv 2604.05546).

The expectations below are transcribed from the survey's Figure 3 (placements), Table 2 (input
modality, training-free) and Table 3 (granularity, scenario).
"""
from __future__ import annotations

import pytest

from lvlm_atlas import paths
from lvlm_atlas.catalog.loader import load_catalog
from lvlm_atlas.cli.schema import render_schema


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_catalog_validates_and_is_large(catalog):
    assert len(catalog) >= 350, f"the catalog has {len(catalog)} papers; the goal is >= 350"


def test_committed_json_schema_is_current():
    assert paths.PAPER_SCHEMA.read_text(encoding="utf-8") == render_schema(), "run: atlas schema"


FIGURE_3 = {
    "encoding/vision-encoders/image": ["fastvit", "convllava", "fastvlm-vasu"],
    "encoding/vision-encoders/video": ["video-llama", "qwen2-vl", "video-chatgpt", "longvila", "longva", "longvlm", "longvu"],
    "encoding/modality-adapters": ["blip-2", "qwen-vl", "honeybee", "tokenpacker"],
    "encoding/keyframe-selection/training-free": ["aks", "q-frame", "videotree", "focus-keyframe"],
    "encoding/keyframe-selection/training-aware": ["vila-wang", "frame-voyager", "mllm-frame-selection"],
    "encoding/adaptive-resolution": ["visionthink", "q-frame", "longvu"],
    "encoding/token-compression/attention-agnostic": ["llava-prumerge", "trim", "pvc", "folder"],
    "encoding/token-compression/attention-aware": ["visionzip", "vispruner", "sparsevila", "hivtp", "tosa"],
    "prefilling/token-compression/diversity-guided": [
        "framefusion", "g-prune", "dart", "pact", "aim", "divprune", "fastvid", "dycoke", "cdpruner", "prunevid",
        "holitom", "vidcom2", "sttm", "streamingtom", "dynamic-vlm", "timechat-online"],
    "prefilling/token-compression/attention-guided": [
        "fastv", "pyramiddrop", "framefusion", "holitom", "sparsevlm", "btp", "fitprune", "atp-llava", "himix",
        "zipvl", "dynamic-llava", "efficientllava", "streamingvlm"],
    "prefilling/sparse-attention": ["videonsa", "spargeattn", "xattention", "mminference", "video-xl-2"],
    "decoding/kv-cache-compression/token-level": ["look-m", "elastic-cache", "rekv", "livevlm", "fastcache", "inf-mllm", "sparsevila"],
    "decoding/kv-cache-compression/layer-level": ["vl-cache", "meda", "st3", "madakv", "infinipot-v"],
    "decoding/kv-cache-compression/head-level": ["sparsemm"],
    "decoding/kv-cache-compression/bit-level": ["akvq-vl", "calibquant", "vidkv"],
    "decoding/speculative-decoding/training-free": ["specvlm-ji"],
    "decoding/speculative-decoding/training-aware": ["spec-llava", "msd", "vispec", "fastvlm-bajpai", "specvlm-huang", "flash"],
    "decoding/efficient-reasoning": ["fs-vispr", "pixelthink", "car-lu"],
}


@pytest.mark.parametrize("node,ids", FIGURE_3.items(), ids=list(FIGURE_3))
def test_figure_3_placements(catalog, node, ids):
    missing = [i for i in ids if i not in catalog.by_id]
    assert not missing, f"Figure 3 papers missing from the catalog: {missing}"
    misplaced = [i for i in ids if node not in {p.node for p in catalog.by_id[i].placements}]
    assert not misplaced, f"not placed on {node}: {misplaced}"


# Table 2: (id, input modality, training-free)
TABLE_2 = [
    ("g-prune", "general", True), ("pact", "general", True), ("divprune", "general", True),
    ("cdpruner", "general", True), ("dart", "general", True), ("dycoke", "video", True),
    ("prunevid", "video", True), ("aim", "video", True), ("framefusion", "video", True),
    ("fastvid", "video", True), ("holitom", "video", True), ("vidcom2", "video", True), ("sttm", "video", True),
    ("dynamic-vlm", "video", False), ("streamingtom", "streaming-video", True),
    ("timechat-online", "streaming-video", False), ("fastv", "general", True), ("pyramiddrop", "general", False),
    ("himix", "general", False), ("zipvl", "general", True), ("dynamic-llava", "general", False),
    ("efficientllava", "general", False), ("btp", "general", True), ("sparsevlm", "general", True),
    ("fitprune", "general", True), ("atp-llava", "general", False), ("streamingvlm", "streaming-video", False),
]


@pytest.mark.parametrize("pid,modality,training_free", TABLE_2, ids=[t[0] for t in TABLE_2])
def test_table_2_tags(catalog, pid, modality, training_free):
    paper = catalog.by_id[pid]
    assert modality in paper.modality, f"{pid}: Table 2 says {modality}, catalog has {paper.modality}"
    assert paper.training_free is training_free


# Table 3: (id, granularity, scenario)
TABLE_3 = [
    ("look-m", "token", "static"), ("elastic-cache", "token", "static"), ("fastcache", "token", "serving"),
    ("inf-mllm", "token", "streaming"), ("sparsevila", "token", "streaming"), ("rekv", "token", "streaming"),
    ("livevlm", "token", "streaming"), ("vl-cache", "layer", "static"), ("meda", "layer", "static"),
    ("st3", "layer", "static"), ("madakv", "layer", "static"), ("infinipot-v", "layer", "streaming"),
    ("sparsemm", "head", "static"), ("akvq-vl", "bit", "static"), ("vidkv", "bit", "static"),
    ("calibquant", "bit", "static"),
]


@pytest.mark.parametrize("pid,granularity,scenario", TABLE_3, ids=[t[0] for t in TABLE_3])
def test_table_3_tags(catalog, pid, granularity, scenario):
    paper = catalog.by_id[pid]
    assert granularity in paper.granularity, f"{pid}: Table 3 says {granularity}-level, catalog has {paper.granularity}"
    assert scenario in paper.scenario, f"{pid}: Table 3 says {scenario}, catalog has {paper.scenario}"


def test_disambiguated_namesakes(catalog):
    assert catalog.by_id["fastvlm-vasu"].title != catalog.by_id["fastvlm-bajpai"].title
    assert catalog.by_id["specvlm-ji"].title != catalog.by_id["specvlm-huang"].title
    assert catalog.by_id["specvlm-ji"].training_free is True
    assert catalog.by_id["specvlm-huang"].training_free is False

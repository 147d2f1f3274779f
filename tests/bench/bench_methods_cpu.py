"""Benchmark: prefill cost of every method on a mid-size random LLaVA (16 layers, hidden 1024, 576 visual tokens).

Run: .venv/bin/python tests/bench/bench_methods_cpu.py [--repeats 3] [--budget 144] [--out FILE.json]

Targets (issue 4, item 7), LLM prefill = the decoder stack incl. a method's pruning hook:
  * vision / pre_llm methods keeping 144 of 576 visual tokens: prefill <= 0.45x the full prefill and
    <= 1.15x the "ideal" (the decoder run directly on an input that holds only the kept tokens);
  * in_llm methods: own work (scoring, selection, re-indexing) <= 10% of their prefill, and prefill
    <= 0.6x the full one at K=2.
Each repeat times the full model, the method and the ideal back to back. Ratios use the process CPU time of
the decoder prefill (best over the repeats): on a shared machine other processes inflate wall time but not
this process's CPU time. Best-of-N wall-clock ratios are printed alongside. --out writes the numbers as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lvlm_atlas.methods import harness, presets, registry  # noqa: E402
from lvlm_atlas.methods.transformers_adapter import cache_kwargs  # noqa: E402


class Clock:
    """Wall-clock and process CPU time. CPU time (all threads of this process) is what a shared machine's load
    does not inflate, so ratios of CPU times are the robust comparison here; wall times are reported too."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def timed_prefill(model, inputs) -> tuple[float, float]:
    """(wall, cpu) seconds of the decoder stack's prefill, including a method's pruning hook."""
    from transformers import DynamicCache

    lm = model.model.language_model
    clock: dict = {}

    def pre(module, args, kwargs):
        clock["c"] = Clock()

    def post(module, args, kwargs, out):
        clock["t"] = clock["c"].stop()

    h1 = lm.register_forward_pre_hook(pre, with_kwargs=True, prepend=True)
    h2 = lm.register_forward_hook(post, with_kwargs=True)
    try:
        model(**inputs, **cache_kwargs(model, DynamicCache(config=model.config.get_text_config())), use_cache=True,
              logits_to_keep=1)
    finally:
        h1.remove()
        h2.remove()
    return clock["t"]


def merged_embeds(model, inputs) -> torch.Tensor:
    """The decoder input of the unmodified model (text embeddings with the image features merged in)."""
    embeds = {}

    def grab(module, args, kwargs):
        embeds["x"] = kwargs["inputs_embeds"]

    h = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(**inputs, logits_to_keep=1)
    finally:
        h.remove()
    return embeds["x"]


def ideal_prefill(model, embeds: torch.Tensor, keep_positions: torch.Tensor) -> tuple[float, float]:
    """The decoder alone on an input that already holds only the kept tokens (same position ids)."""
    from transformers import DynamicCache

    x = embeds[:, keep_positions].contiguous()
    mask = torch.ones(1, keep_positions.numel(), dtype=torch.long)
    clock = Clock()
    model.model.language_model(inputs_embeds=x, position_ids=keep_positions.unsqueeze(0), attention_mask=mask,
                               use_cache=True, **cache_kwargs(model, DynamicCache(config=model.config.get_text_config())))
    return clock.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=int, default=144)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="What is in the image?")
    ap.add_argument("--only", default=None, help="comma-separated method names (default: all visual-token methods)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    b = presets.load("mid-llava@random")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (336, 336, 3), dtype=np.uint8))
    inputs = b.inputs(img, args.prompt)
    L = inputs["input_ids"].shape[1]
    embeds = merged_embeds(b.model, inputs)
    text = (inputs["input_ids"][0] != b.model.config.image_token_id).nonzero().squeeze(1)
    timed_prefill(b.model, inputs)  # warm-up
    print(f"mid-llava@random: {L} tokens ({L - text.numel()} visual), {args.threads} threads; ratios of process CPU "
          f"time (best of the repeats), wall-clock ratios in brackets")
    rows = []
    cases = [(n, {"budget": args.budget}) for n in registry.names()
             if registry.get(n).stage.value in ("vision", "pre_llm", "in_llm")] + [("fastv", {"budget": 288})]
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c[0] in wanted]
    for name, params in cases:
        m = registry.create(name, **params)
        fulls, times, overs, ideals = [], [], [], []
        stats = None
        for r in range(args.repeats + 1):                 # first round is a warm-up for this method
            t_full = timed_prefill(b.model, inputs)
            with m.apply(b.model) as s:
                t = timed_prefill(b.model, inputs)
            stats = s.last
            t_ideal = None
            if m.stage.prunes_before_llm:
                keep = torch.sort(torch.cat([text, stats.kept["pre_llm"]])).values
                t_ideal = ideal_prefill(b.model, embeds, keep)
            if r:
                fulls.append(t_full)
                times.append(t)
                overs.append(stats.method_overhead_s)
                ideals.append(t_ideal)

        def best(xs, i):                                  # i = 0: wall, 1: cpu; the least disturbed run
            return min(x[i] for x in xs)

        row = {"method": name, "stage": m.stage.value, "params": params, "visual_after": stats.visual_after,
               "prefill_ms": 1000 * best(times, 0), "full_ms": 1000 * best(fulls, 0),
               "prefill_cpu_ms": 1000 * best(times, 1), "full_cpu_ms": 1000 * best(fulls, 1),
               "ratio_vs_full": best(times, 1) / best(fulls, 1), "wall_ratio_vs_full": best(times, 0) / best(fulls, 0),
               "overhead_ms": 1000 * min(overs), "overhead_share": min(overs) / best(times, 0)}
        ratio_full, share = row["ratio_vs_full"], row["overhead_share"]
        if m.stage.prunes_before_llm:
            row["ideal_ms"] = 1000 * best(ideals, 0)
            row["ratio_vs_ideal"] = best(times, 1) / best(ideals, 1)
            row["wall_ratio_vs_ideal"] = best(times, 0) / best(ideals, 0)
            row["ok"] = ratio_full <= 0.45 and row["ratio_vs_ideal"] <= 1.15
        else:
            row["ok"] = share <= 0.10 and ratio_full <= 0.6
        rows.append(row)
        extra = (f"  vs ideal {row['ratio_vs_ideal']:.2f}x (wall {row['wall_ratio_vs_ideal']:.2f}x)"
                 if "ratio_vs_ideal" in row else "")
        print(f"{name:14s} {row['stage']:8s} kept {row['visual_after']:4d}  prefill {row['prefill_ms']:6.0f} ms wall "
              f"(full {row['full_ms']:6.0f} ms)  vs full {ratio_full:.2f}x (wall {row['wall_ratio_vs_full']:.2f}x)"
              f"{extra}  own work {row['overhead_ms']:6.1f} ms ({100 * share:.1f}%)  {'OK' if row['ok'] else 'MISSED'}",
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"seq_len": L, "threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

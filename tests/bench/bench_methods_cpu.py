"""Benchmark: prefill cost of every method on a mid-size random LLaVA (16 layers, hidden 1024, 576 visual tokens).

Run: .venv/bin/python tests/bench/bench_methods_cpu.py [--repeats 3] [--budget 144] [--out FILE.json]

Targets (issue 4, item 7), LLM prefill = the decoder stack incl. a method's pruning hook:
  * vision / pre_llm methods keeping 144 of 576 visual tokens: prefill <= 0.45x the full prefill and
    <= 1.15x the "ideal" (the decoder run directly on an input that holds only the kept tokens);
  * in_llm methods: own work (scoring, selection, re-indexing) <= 10% of their prefill, and prefill
    <= 0.6x the full one at K=2.
Each repeat times the full model, the method and the ideal back to back; the best (least disturbed) time of
each over the repeats gives the ratios, as timeit does (a shared machine's load only ever adds time).
--out writes the numbers as JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from methods import harness, presets, registry  # noqa: E402


def timed_prefill(model, inputs) -> float:
    from transformers import DynamicCache

    with harness.llm_timer(model, "cpu") as times:
        model(**inputs, past_key_values=DynamicCache(config=model.config.get_text_config()), use_cache=True,
              logits_to_keep=1)
    return times[0]


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


def ideal_prefill(model, embeds: torch.Tensor, keep_positions: torch.Tensor) -> float:
    """The decoder alone on an input that already holds only the kept tokens (same position ids)."""
    from transformers import DynamicCache

    x = embeds[:, keep_positions].contiguous()
    mask = torch.ones(1, keep_positions.numel(), dtype=torch.long)
    t0 = time.perf_counter()
    model.model.language_model(inputs_embeds=x, position_ids=keep_positions.unsqueeze(0), attention_mask=mask,
                               use_cache=True, past_key_values=DynamicCache(config=model.config.get_text_config()))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=int, default=144)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="What is in the image?")
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
    print(f"mid-llava@random: {L} tokens ({L - text.numel()} visual), {args.threads} threads; each repeat times "
          f"full, method and ideal back to back; best of the repeats is reported")
    rows = []
    cases = [(n, {"budget": args.budget}) for n in registry.names()
             if registry.get(n).stage.value in ("vision", "pre_llm", "in_llm")] + [("fastv", {"budget": 288})]
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
        # best-of-N (timeit practice: the least disturbed run) for each quantity; medians kept for reference
        ratio_full = min(times) / min(fulls)
        share = min(overs) / min(times)
        row = {"method": name, "stage": m.stage.value, "params": params, "visual_after": stats.visual_after,
               "prefill_ms": 1000 * min(times), "full_ms": 1000 * min(fulls),
               "ratio_vs_full": ratio_full, "overhead_ms": 1000 * min(overs), "overhead_share": share,
               "median_ratio_vs_full": statistics.median(t / f for t, f in zip(times, fulls))}
        if m.stage.prunes_before_llm:
            row["ideal_ms"] = 1000 * min(ideals)
            row["ratio_vs_ideal"] = min(times) / min(ideals)
            row["ok"] = ratio_full <= 0.45 and row["ratio_vs_ideal"] <= 1.15
        else:
            row["ok"] = share <= 0.10 and ratio_full <= 0.6
        rows.append(row)
        extra = f"  vs ideal {row['ratio_vs_ideal']:.2f}x" if "ratio_vs_ideal" in row else ""
        print(f"{name:14s} {row['stage']:8s} kept {row['visual_after']:4d}  prefill {row['prefill_ms']:7.0f} ms "
              f"(full {row['full_ms']:6.0f} ms)  vs full {ratio_full:.2f}x{extra}  own work {row['overhead_ms']:6.1f} ms "
              f"({100 * share:.1f}%)  {'OK' if row['ok'] else 'MISSED'}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"seq_len": L, "threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: prefill cost of every method on a mid-size random LLaVA (16 layers, hidden 1024, 576 visual tokens).

Run: .venv/bin/python tests/bench/bench_methods_cpu.py [--repeats 3] [--budget 144] [--out FILE.json]

Targets (issue 4, item 7), LLM prefill = the decoder stack incl. a method's pruning hook:
  * vision / pre_llm methods keeping 144 of 576 visual tokens: prefill <= 0.45x the full prefill and
    <= 1.15x the "ideal" (the decoder run directly on an input that holds only the kept tokens);
  * in_llm methods: own work (scoring, selection, re-indexing) <= 10% of their prefill, and prefill
    <= 0.6x the full one at K=2.
Medians over --repeats runs after one warm-up. Prints a table; --out writes the numbers as JSON.
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


def ideal_prefill(model, inputs, keep_positions: torch.Tensor) -> float:
    """The decoder alone on an input that already holds only the kept tokens (same positions)."""
    from transformers import DynamicCache

    lm = model.model.language_model
    embeds = {}
    def grab(module, args, kwargs):
        embeds["x"] = kwargs["inputs_embeds"]

    h = lm.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(**inputs, logits_to_keep=1)
    finally:
        h.remove()
    x = embeds["x"][:, keep_positions].contiguous()
    pos = keep_positions.unsqueeze(0)
    mask = torch.ones(1, keep_positions.numel(), dtype=torch.long)
    t0 = time.perf_counter()
    lm(inputs_embeds=x, position_ids=pos, attention_mask=mask, use_cache=True,
       past_key_values=DynamicCache(config=model.config.get_text_config()))
    return time.perf_counter() - t0


def median(f, repeats: int) -> float:
    f()
    return statistics.median(f() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=int, default=144)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    b = presets.load("mid-llava@random")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (336, 336, 3), dtype=np.uint8))
    inputs = b.inputs(img, "What is shown in this image? Describe the main object and its color.")
    L = inputs["input_ids"].shape[1]
    full = median(lambda: timed_prefill(b.model, inputs), args.repeats)
    print(f"mid-llava@random: sequence {L} tokens (576 visual), full LLM prefill {full * 1000:.0f} ms "
          f"(median of {args.repeats}, {args.threads} threads)")
    rows = []
    cases = [(n, {"budget": args.budget}) for n in registry.names()] + [("fastv", {"budget": 288})]
    for name, params in cases:
        m = registry.create(name, **params)
        overheads = []

        def run():
            with m.apply(b.model) as s:
                t = timed_prefill(b.model, inputs)
            overheads.append(s.last.method_overhead_s)
            last[0] = s.last
            return t

        last = [None]
        t = median(run, args.repeats)
        over = statistics.median(overheads[1:]) if len(overheads) > 1 else overheads[0]
        row = {"method": name, "stage": m.stage.value, "params": {k: v for k, v in params.items()},
               "visual_after": last[0].visual_after, "prefill_ms": t * 1000, "ratio_vs_full": t / full,
               "overhead_ms": over * 1000, "overhead_share": over / t}
        if m.stage.prunes_before_llm:
            stats = last[0]
            text = torch.tensor([i for i in range(L) if int(inputs["input_ids"][0, i]) != b.model.config.image_token_id])
            keep = torch.sort(torch.cat([text, stats.kept["pre_llm"]])).values
            ideal = median(lambda: ideal_prefill(b.model, inputs, keep), args.repeats)
            row.update(ideal_ms=ideal * 1000, ratio_vs_ideal=t / ideal,
                       ok=(t / full <= 0.45 and t / ideal <= 1.15))
        else:
            row.update(ok=(over / t <= 0.10 and t / full <= 0.6))
        rows.append(row)
        extra = (f"  vs ideal {row['ratio_vs_ideal']:.2f}x" if "ratio_vs_ideal" in row else "")
        print(f"{name:14s} {row['stage']:8s} kept {row['visual_after']:4d}  prefill {row['prefill_ms']:7.0f} ms  "
              f"vs full {row['ratio_vs_full']:.2f}x{extra}  own work {row['overhead_ms']:6.1f} ms "
              f"({100 * row['overhead_share']:.1f}%)  {'OK' if row['ok'] else 'MISSED'}")
    if args.out:
        Path(args.out).write_text(json.dumps({"full_prefill_ms": full * 1000, "seq_len": L, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

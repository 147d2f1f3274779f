"""Benchmark a sweep of methods x models x budgets and write a results JSON (with provenance)."""
from __future__ import annotations

import sys
import tempfile

from lvlm_atlas.cli._common import add_model_options, parse_budget, parse_params


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_arguments(parser) -> None:
    parser.add_argument("--methods", required=True, help="comma-separated method names (the baseline is always run)")
    parser.add_argument("--models", default=None, help="comma-separated presets / hub ids (default: tiny-llava, "
                        "or the workload's model)")
    parser.add_argument("--workload", default=None, help="a scenario preset: single-image, high-res, multi-image, "
                        "video (real-size random-weight model, synthetic inputs; see lvlm_atlas/methods/workloads.py)")
    parser.add_argument("--tiny", action="store_true", help="with --workload: its small offline stand-in model (CPU smoke)")
    parser.add_argument("--batch", type=int, default=None, help="requests run together (equal lengths; default 1)")
    parser.add_argument("--budgets", default="64,128,192", help="comma-separated visual tokens kept (or fractions)")
    parser.add_argument("--dataset", default=None, help="JSONL dataset (image, question, answers); "
                        "default: the generated shapes dataset (--n items)")
    parser.add_argument("--n", type=int, default=8, help="items of the generated dataset when --dataset is not given")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N dataset items")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--param", action="append", metavar="METHOD.KEY=VALUE",
                        help="method parameter, e.g. fastv.k=3 (repeatable)")
    parser.add_argument("--shard", default=None, metavar="I/N", help="run only shard I of N (1-based), for CI matrices")
    parser.add_argument("--ray", default=None, metavar="ADDRESS", help="fan jobs out over a Ray cluster (extra 'distributed')")
    parser.add_argument("--out", required=True, help="results file, e.g. catalog/benchmarks/cpu-tiny.json")
    parser.add_argument("--no-progress", action="store_true")
    add_model_options(parser)


def _method_params(items) -> dict:
    out: dict = {}
    for key, value in parse_params(items).items():
        method, dot, name = key.partition(".")
        if not dot:
            raise SystemExit(f"error: --param {key}=...: use METHOD.KEY=VALUE, e.g. fastv.k=3")
        out.setdefault(method, {})[name] = value
    return out


def run(args) -> int:
    from lvlm_atlas.methods import bench, registry
    from lvlm_atlas.methods.dataset import generate, load

    methods = _csv(args.methods)
    unknown = [m for m in methods if m != bench.BASELINE and m not in registry.names()]
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}; known: {', '.join(registry.names())}", file=sys.stderr)
        return 2
    from lvlm_atlas.methods import workloads

    workload = None
    batch = args.batch if args.batch is not None else 1
    if batch < 1:
        print(f"error: --batch must be at least 1, got {batch}", file=sys.stderr)
        return 2
    if args.workload:
        try:
            workload = workloads.get(args.workload, args.batch)
        except ValueError as exc:
            print(f"error: --workload: {exc}", file=sys.stderr)
            return 2
        batch = workload.batch
    if batch > 1:
        single = [m for m in methods if m != bench.BASELINE and registry.load_card(m).batch == "1"]
        if single:
            print(f"error: --batch {batch}: {', '.join(single)} support(s) batch size 1 only; run them without "
                  "--batch or pick batch-capable methods (their cards say batch: any)", file=sys.stderr)
            return 2
    if workload is not None:
        items = workloads.items(workload, n=args.limit or 1, tiny=args.tiny)
    elif args.dataset:
        items = load(args.dataset)
    else:
        tmp = tempfile.mkdtemp(prefix="methods-shapes-")
        items = load(generate(tmp, n=args.n))
    if args.limit:
        items = items[: args.limit]
    models = _csv(args.models) if args.models else (
        [workload.tiny if args.tiny else workload.model] if workload else ["tiny-llava"])
    cfg = bench.BenchConfig(methods=methods, models=models, batch=batch,
                            workload=workload.name if workload else None,
                            budgets=[parse_budget(b) for b in _csv(args.budgets)], items=items,
                            repeats=args.repeats, warmup=args.warmup, max_new_tokens=args.max_new_tokens,
                            device=args.device, dtype=args.dtype, attn=args.attn, params=_method_params(args.param))
    try:
        jobs = bench.shard(bench.expand_jobs(cfg), args.shard)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = len(jobs) * len(items) * (cfg.warmup + cfg.repeats)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="bench", unit="run", file=sys.stderr)
    progress = bar.update if bar else None
    try:
        rows = (bench.run_jobs_ray(jobs, cfg, args.ray, progress) if args.ray
                else bench.run_jobs(jobs, cfg, progress))
    finally:
        if bar:
            bar.close()
    backends = sorted({r["attention_backend"] for r in rows})
    import shlex

    command = "atlas " + shlex.join(getattr(args, "argv", sys.argv[1:]))
    prov = bench.provenance(args.device, ",".join(backends) if backends else args.attn, command=command)
    if args.shard:
        prov["shard"] = args.shard
    path = bench.write_results(args.out, rows, prov)
    print(f"wrote {len(rows)} results to {path}")
    return 0

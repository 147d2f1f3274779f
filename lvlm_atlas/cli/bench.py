"""Benchmark a sweep of methods x models x budgets and write a results JSON (with provenance)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from lvlm_atlas.cli._common import add_model_options, parse_params


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_arguments(parser) -> None:
    parser.add_argument("--methods", required=True, help="comma-separated method names (the baseline is always run)")
    parser.add_argument("--models", default=None, help="comma-separated presets / hub ids (default: tiny-llava, "
                        "or the workload's model)")
    parser.add_argument("--workload", default=None, help="a scenario preset: single-image, high-res, multi-image, video, "
                        "video-clip (real-size random-weight model, synthetic inputs; see lvlm_atlas/methods/workloads.py)")
    parser.add_argument("--tiny", action="store_true", help="with --workload: its small offline stand-in model (CPU smoke)")
    parser.add_argument("--batch", type=int, default=None, help="requests run together (equal lengths; default 1)")
    parser.add_argument("--profile", action="store_true", help="one extra request per job under the torch profiler: "
                        "a method's own device time, apart from the timed runs")
    parser.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                        help="the unmodified model's decode with a static cache and torch.compile (default backend "
                             "inductor: CUDA graphs on a GPU); the baseline row says so")
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
    from lvlm_atlas.cli._checks import UsageError

    out: dict = {}
    try:
        parsed = parse_params(items)
    except Exception as exc:  # noqa: BLE001 - argparse.ArgumentTypeError or a YAML error
        raise UsageError(f"{' '.join(str(exc).split())}; write METHOD.KEY=VALUE, e.g. fastv.k=3") from None
    for key, value in parsed.items():
        method, dot, name = key.partition(".")
        if not dot or not method or not name:
            raise UsageError(f"--param {key}=...: write METHOD.KEY=VALUE, e.g. fastv.k=3")
        out.setdefault(method, {})[name] = value
    return out


def _check(args):
    """Every user error, before any model loads: (methods, models, budgets, items, params, batch, workload)."""
    from lvlm_atlas.cli._checks import UsageError, check_budget, check_device, check_image, check_method, \
        check_model, preset_visual_tokens
    from lvlm_atlas.methods import bench, registry
    from lvlm_atlas.methods.dataset import generate, load

    methods = _csv(args.methods)
    if not methods:
        raise UsageError("--methods is empty; write comma-separated method names, e.g. fastv,sparsevlm")
    unknown = [m for m in methods if m != bench.BASELINE and m not in registry.names()]
    if unknown:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(registry.names())}")
    for opt, value, low in (("--repeats", args.repeats, 1), ("--warmup", args.warmup, 0), ("--n", args.n, 1),
                            ("--max-new-tokens", args.max_new_tokens, 1)):
        if value < low:
            raise UsageError(f"{opt} {value}: write {low} or more")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: write 1 or more items")
    check_device(args.device, args.dtype)
    budgets = [check_budget(b, "--budgets entry") for b in _csv(args.budgets)] or [None]
    params = _method_params(args.param)
    stray = sorted(set(params) - set(methods))
    if stray:
        raise UsageError(f"--param for {', '.join(stray)}, which is not in --methods; add it to --methods or drop the --param")
    from lvlm_atlas.methods import workloads

    video_workload = bool(args.workload) and args.workload in workloads.WORKLOADS and \
        workloads.WORKLOADS[args.workload].video_frames > 0
    for m in methods:
        if m != bench.BASELINE:
            if getattr(registry.get(m), "needs_video", False) and not video_workload:
                raise UsageError(f"{m} needs video input; add --workload video-clip (a synthetic video on "
                                 f"Qwen2-VL), or run it with atlas run {m} --video FILE")
            check_method(m, dict(params.get(m, {})))
            for b in budgets:
                if b is not None and bench.takes_budget(m):   # budget-less methods (kivi) run once, without one
                    check_method(m, {**params.get(m, {}), "budget": b})

    workload = None
    batch = args.batch if args.batch is not None else 1
    if batch < 1:
        raise UsageError(f"--batch {batch}: write 1 or more")
    if args.workload:
        try:
            workload = workloads.get(args.workload, args.batch)
        except ValueError as exc:
            raise UsageError(f"--workload: {exc}") from None
        batch = workload.batch
        if workload.video_frames and batch > 1:
            raise UsageError(f"--batch {batch}: the {workload.name} workload runs one video per request; drop --batch")
    elif args.tiny:
        raise UsageError("--tiny needs --workload (it picks the workload's small stand-in model)")
    if batch > 1:
        single = [m for m in methods if m != bench.BASELINE and registry.load_card(m).batch == "1"]
        if single:
            raise UsageError(f"--batch {batch}: {', '.join(single)} support(s) batch size 1 only; run them without "
                             "--batch or pick batch-capable methods (their cards say batch: any)")
    models = _csv(args.models) if args.models else (
        [workload.tiny if args.tiny else workload.model] if workload else ["tiny-llava"])
    if not models:
        raise UsageError("--models is empty; write comma-separated presets or hub ids, e.g. tiny-llava")
    for model in models:
        check_model(model, "--models entry")
        # an image's token count; a video workload's requests are sized by the workload, not by one image
        n = None if workload is not None and workload.video_frames else preset_visual_tokens(model)
        for b in budgets:  # a sweep may mix models: too large for one model is a warning, not an error
            if n is not None and isinstance(b, int) and b >= n:
                print(f"warning: --budgets entry {b} is not below the {n} visual tokens {model} makes of an image; "
                      f"that job keeps every visual token", file=sys.stderr)
    if workload is not None:
        if args.dataset:
            raise UsageError("--workload makes its own inputs; drop --dataset (or drop --workload)")
        if workload.video_frames:
            from lvlm_atlas.methods.presets import PRESETS
            from lvlm_atlas.methods.video import QWEN_FAMILIES

            other = [m for m in models if m in PRESETS and PRESETS[m].family not in QWEN_FAMILIES]
            if other:
                raise UsageError(f"--workload {workload.name} feeds video, which only Qwen2-VL / Qwen2.5-VL models "
                                 f"take; drop {', '.join(other)} from --models (e.g. use tiny-qwen2-vl)")
        return methods, models, budgets, workloads.items(workload, n=args.limit or 1, tiny=args.tiny), params, \
            batch, workload
    if args.dataset:
        if not Path(args.dataset).is_file():
            raise UsageError(f"--dataset {args.dataset}: no such file; write the path of a JSONL file "
                             "(one {\"image\": ..., \"question\": ...} per line)")
        try:
            items = load(args.dataset)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--dataset {' '.join(str(exc).split())}") from None
    else:
        tmp = tempfile.mkdtemp(prefix="methods-shapes-")
        items = load(generate(tmp, n=args.n))
    if args.limit:
        items = items[: args.limit]
    for i, it in enumerate(items):
        check_image(it["image"], f"dataset item {it.get('id', i + 1)}: image")
    return methods, models, budgets, items, params, batch, None


def _last_model_loader():
    """A loader for `bench.run_jobs` that keeps the last model it loaded, so the sweep can run (and save) job
    by job without loading a model once per job."""
    from lvlm_atlas.methods import presets

    cache: dict = {}

    def load(name, **kw):
        key = (name, tuple(sorted((k, str(v)) for k, v in kw.items())))
        if key not in cache:
            cache.clear()
            cache[key] = presets.load(name, **kw)
        return cache[key]

    return load


def _run_keeping_finished(bench, jobs, cfg, progress):
    """(rows, failure): all jobs of one model in one call (one baseline pass); when a call fails, its jobs
    are rerun one by one (the model stays loaded) so that every job that can finish is kept, and
    `failure` is (index, job, exception) of the first job that cannot."""
    rows: list[dict] = []
    loader = _last_model_loader()
    for model in dict.fromkeys(j.model for j in jobs):
        group = [j for j in jobs if j.model == model]
        try:
            rows += bench.run_jobs(group, cfg, progress, loader=loader)
            continue
        except Exception:  # noqa: BLE001 - find the failing job below, keeping the others
            pass
        for job in group:
            try:
                rows += bench.run_jobs([job], cfg, progress, loader=loader)
            except Exception as exc:  # noqa: BLE001 - keep what finished, then report
                return rows, (jobs.index(job), job, exc)
    return rows, None


def run(args) -> int:
    import shlex

    from lvlm_atlas.cli._checks import UsageError, fail
    from lvlm_atlas.methods import bench

    try:
        methods, models, budgets, items, params, batch, workload = _check(args)
        cfg = bench.BenchConfig(methods=methods, models=models, budgets=budgets, items=items,
                                repeats=args.repeats, warmup=args.warmup, max_new_tokens=args.max_new_tokens,
                                device=args.device, dtype=args.dtype, attn=args.attn, params=params,
                                batch=batch, workload=workload.name if workload else None,
                                profile=args.profile, compile=args.compile)
        try:
            jobs = bench.shard(bench.expand_jobs(cfg), args.shard)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    except UsageError as exc:
        return fail(exc)
    total = len(jobs) * len(items) * (cfg.warmup + cfg.repeats)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="bench", unit="run", file=sys.stderr)
    progress = bar.update if bar else None
    command = "atlas " + shlex.join(getattr(args, "argv", sys.argv[1:]))
    rows: list[dict] = []
    failure = None
    try:
        if args.ray:
            rows = bench.run_jobs_ray(jobs, cfg, args.ray, progress)
        else:
            rows, failure = _run_keeping_finished(bench, jobs, cfg, progress)
    finally:
        if bar:
            bar.close()
    backends = sorted({r["attention_backend"] for r in rows})
    prov = bench.provenance(args.device, ",".join(backends) if backends else args.attn, command=command)
    if args.shard:
        prov["shard"] = args.shard
    if failure is not None:
        i, job, exc = failure
        prov["incomplete"] = {"jobs_done": i, "jobs_total": len(jobs),
                              "failed_job": {"model": job.model, "method": job.method, "budget": job.budget},
                              "error": f"{type(exc).__name__}: {exc}"}
    path = bench.write_results(args.out, rows, prov)
    if failure is not None:
        i, job, exc = failure
        return fail(f"job {i + 1} of {len(jobs)} ({job.model}, {job.method}, budget {job.budget}) failed: "
                    f"{type(exc).__name__}: {exc}; the {i} finished jobs ({len(rows)} results) are in {path}", 1)
    print(f"wrote {len(rows)} results to {path}")
    return 0

"""Benchmark sweeps: methods x models x budgets on a JSONL dataset, measured identically for every method.

Every job (model, method, budget) runs each dataset item with `warmup` untimed runs and `repeats` timed
runs (per-item medians, then the mean over items); accuracy is exact match against the item's answers;
agreement with the unmodified model (greedy-token match rate, first-token KL) is always reported.
Results are written atomically as `{"schema": 1, "provenance": {...}, "results": [...]}`.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BASELINE = "none"


@dataclass(frozen=True)
class Job:
    model: str
    method: str
    budget: int | float | None


@dataclass
class BenchConfig:
    methods: list[str]
    models: list[str]
    budgets: list[int | float | None]
    items: list[dict]
    repeats: int = 3
    warmup: int = 1
    max_new_tokens: int = 16
    device: str = "cpu"
    dtype: str | None = None
    attn: str | None = None
    params: dict = field(default_factory=dict)      # method name -> {param: value}
    batch: int = 1                                  # copies of each request run together (equal lengths)
    workload: str | None = None                     # lvlm_atlas.methods.workloads name, for provenance
    profile: bool = False                           # one extra profiled request per job (not timed)
    compile: str | None = None                      # torch.compile backend for the unmodified model's decode


def takes_budget(method: str) -> bool:
    """Whether a method's card lists a `budget` parameter (KIVI, for one, keeps every entry)."""
    from lvlm_atlas.methods import registry

    return any(p.name == "budget" for p in registry.load_card(method).parameters)


def expand_jobs(cfg: BenchConfig) -> list[Job]:
    jobs = []
    for model in cfg.models:
        jobs.append(Job(model, BASELINE, None))
        for method in cfg.methods:
            if method == BASELINE:
                continue
            for budget in (cfg.budgets if takes_budget(method) else [None]):
                jobs.append(Job(model, method, budget))
    return jobs


def shard(jobs: list[Job], spec: str | None) -> list[Job]:
    """`i/n` (1-based i) keeps every n-th job starting at i; None keeps all."""
    if not spec:
        return jobs
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects i/n like 1/4, got {spec!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {spec}: i must be between 1 and n")
    return jobs[i - 1::n]


def _git_commit() -> str | None:
    try:
        from lvlm_atlas import paths

        root = paths.ROOT
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: str, attention_backend: str | None, command: str | None = None) -> dict:
    import torch
    import transformers

    if device.startswith("cuda") and torch.cuda.is_available():
        dev_name = torch.cuda.get_device_name(torch.device(device))
    else:
        dev_name = f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible)"
    return {
        "device": dev_name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attention_backend": attention_backend,
        "git_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "host": platform.node(),
        "command": command if command is not None else " ".join(["atlas"] + sys.argv[1:]),
    }


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def run_model_jobs(model: str, jobs: list[Job], cfg: BenchConfig, progress=None, loader=None) -> list[dict]:
    """Run all jobs of one model (the model is loaded once, by `loader` or `presets.load`). `progress(n)` is
    called per finished run."""
    from PIL import Image

    from lvlm_atlas.methods import harness, presets, registry
    from lvlm_atlas.methods.dataset import exact_match

    bundle = (loader or presets.load)(model, device=cfg.device, dtype=cfg.dtype, attn=cfg.attn)
    def model_inputs(it):
        if "video" in it:
            from lvlm_atlas.methods.video import video_inputs
            return video_inputs(bundle, it["video"], it["question"])
        return bundle.inputs(it["images"] if "images" in it else Image.open(it["image"]), it["question"])

    prepared = [harness.batched(model_inputs(it), cfg.batch) for it in cfg.items]
    # image tokens, and video tokens on models that have them (counted once, outside the timed runs)
    visual_ids = {t for t in (getattr(bundle.model.config, "image_token_id", None),
                              getattr(bundle.model.config, "video_token_id", None)) if t is not None}
    eos = bundle.eos_token_id

    def once(inputs, method=None, session=None):
        # the unmodified model's decode can run compiled (static cache); decode-stage methods use their own loop
        return harness.generate(bundle.model, inputs, cfg.max_new_tokens, eos, cfg.device, method=method,
                                session=session, decode=bundle.decode, compile=cfg.compile if method is None else None)

    baselines = [once(inp) for inp in prepared]
    rows = []
    for job in jobs:
        method = None
        if job.method != BASELINE:
            params = dict(cfg.params.get(job.method, {}))
            if job.budget is not None:
                params["budget"] = job.budget
            method = registry.create(job.method, **params)
        per_item = []
        for item, inp, base in zip(cfg.items, prepared, baselines):
            runs, stats = [], None
            for r in range(cfg.warmup + cfg.repeats):
                ctx = method.apply(bundle.model) if method is not None else contextlib.nullcontext()
                with ctx as session:
                    res = once(inp, method, session)
                if r >= cfg.warmup:
                    runs.append((res, session.last if session is not None else None))
                if progress:
                    progress(1)
            res, stats = runs[-1]
            n_vis = int(sum((inp["input_ids"][0] == t).sum() for t in visual_ids))
            answer = bundle.decode(res.tokens)
            agree = harness.agreement(base, res)
            per_item.append({
                "visual_tokens_before": stats.visual_before if stats else n_vis,
                "visual_tokens_after": stats.visual_after if stats else n_vis,
                "ttft_ms": _median([x.ttft_s * 1000 for x, _ in runs]),
                "tpot_ms": _median([None if x.tpot_s is None else x.tpot_s * 1000 for x, _ in runs]),
                "prefill_ms": _median([x.prefill_llm_s * 1000 for x, _ in runs]),
                "method_overhead_ms": _median([(s.method_overhead_s * 1000) if s else 0.0 for _, s in runs]),
                "peak_memory_bytes": max(x.peak_memory_bytes for x, _ in runs),
                "kv_cache_bytes": res.kv_cache_bytes,
                "greedy_match": agree["greedy_match"], "first_token_kl": agree["first_token_kl"],
                "correct": exact_match(answer, item["answers"]) if item.get("answers") else None,
                "speculative": res.extra.get("speculative"),
                "method_report": dict(getattr(method, "report", None) or {}) or None,
            })
        keys = ["visual_tokens_before", "visual_tokens_after", "ttft_ms", "tpot_ms", "prefill_ms",
                "method_overhead_ms", "greedy_match", "first_token_kl"]
        row = {"method": job.method, "model": model, "params": method.params() if method else {},
               "budget": job.budget, "stage": method.stage.value if method else None}
        row.update({k: _mean([p[k] for p in per_item]) for k in keys})
        row["peak_memory_bytes"] = max(p["peak_memory_bytes"] for p in per_item)
        row["kv_cache_bytes"] = _mean([p["kv_cache_bytes"] for p in per_item])
        correct = [p["correct"] for p in per_item if p["correct"] is not None]
        row["accuracy"] = (sum(correct) / len(correct)) if correct else None
        row.update({"repeats": cfg.repeats, "warmup": cfg.warmup, "n_items": len(per_item), "batch": cfg.batch,
                    "workload": cfg.workload, "prompt_tokens": int(prepared[0]["input_ids"].shape[-1]),
                    "max_new_tokens": cfg.max_new_tokens, "attention_backend": bundle.attn_implementation,
                    "dtype": str(bundle.dtype).replace("torch.", "")})
        row["compile"] = cfg.compile if method is None else None
        if cfg.profile:
            ctx = method.apply(bundle.model) if method is not None else contextlib.nullcontext()
            with ctx:
                row["profile"] = harness.profile_request(bundle.model, prepared[0], cfg.max_new_tokens, cfg.device)
        row["roofline"] = _roofline(bundle, cfg, row, prepared)
        for key in ("speculative", "method_report"):  # decode-stage statistics, a method's own report (e.g. tome)
            found = [p[key] for p in per_item if p.get(key)]
            if found:  # mean of each numeric entry over the items
                row[key] = {k: _mean([f.get(k) for f in found]) for k in found[0]
                            if all(isinstance(f.get(k), (int, float)) or f.get(k) is None for f in found)}
        rows.append(row)
    return rows


def _roofline(bundle, cfg: BenchConfig, row: dict, prepared: list) -> dict | None:
    """The cost model's lower bound for this run on the GPU it ran on, and measured/bound ratios.

    None on devices the cost model does not list (CPUs, unknown GPUs): there is no roofline to compare to.
    """
    import torch

    from lvlm_atlas import costmodel

    if not str(cfg.device).startswith("cuda") or not torch.cuda.is_available() or cfg.batch != 1:
        return None   # the bound is computed for one request
    gpu = costmodel.gpu_for_device(torch.cuda.get_device_name(torch.device(cfg.device)))
    if gpu is None:
        return None
    config = bundle.model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else getattr(config, "text_config", config)
    llm = costmodel.llm_spec_from_config(text)
    prompt = _mean([int(inp["input_ids"].shape[-1]) for inp in prepared])
    prompt = int(round(prompt - (row["visual_tokens_before"] or 0) + (row["visual_tokens_after"] or 0)))
    bound = costmodel.roofline_bound(llm, prompt, cfg.max_new_tokens, gpu, bundle.dtype.itemsize)
    return costmodel.compare_to_bound(row, bound)


def run_jobs(jobs: list[Job], cfg: BenchConfig, progress=None, loader=None) -> list[dict]:
    rows = []
    for model in dict.fromkeys(j.model for j in jobs):
        rows += run_model_jobs(model, [j for j in jobs if j.model == model], cfg, progress, loader)
    return rows


def run_jobs_ray(jobs: list[Job], cfg: BenchConfig, address: str, progress=None) -> list[dict]:
    """Fan jobs out over a Ray cluster, one job per task (one GPU each when on CUDA).

    `address` is an existing cluster ("auto", "ray://host:10001", ...) or "local" to start a
    throw-away local instance (2 CPUs) for testing. Workers import this checkout via PYTHONPATH.
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs the optional 'distributed' extra: pip install 'ray[default]'") from None
    import lvlm_atlas  # workers import the same copy of the package as this process

    root = str(Path(lvlm_atlas.__file__).resolve().parent.parent)
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}}
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=2, include_dashboard=False, runtime_env=env, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        started = True
    try:
        gpus = 1 if cfg.device.startswith("cuda") else 0
        task = ray.remote(num_gpus=gpus, num_cpus=1)(_ray_job)
        pending = {task.remote(job, cfg): job for job in jobs}
        done: dict = {}
        remaining = list(pending)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            done[ready[0]] = ray.get(ready[0])
            if progress:
                progress(len(cfg.items) * (cfg.warmup + cfg.repeats))
        return [row for ref in pending for row in done[ref]]   # job order, not completion order
    finally:
        if started:
            ray.shutdown()


def _ray_job(job: Job, cfg: BenchConfig) -> list[dict]:
    return run_model_jobs(job.model, [job], cfg)


def write_results(path: str | Path, rows: list[dict], prov: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schema": 1, "provenance": prov, "results": rows}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def merge_results(docs: list[dict]) -> tuple[list[dict], dict]:
    """Concatenate the results of several files (shards of one sweep); provenance must agree except for
    date/host/shard, which are collected. Raises ValueError on an invalid file or mismatched provenance."""
    if not docs:
        raise ValueError("nothing to merge")
    for i, doc in enumerate(docs):
        problems = validate_results(doc)
        if problems:
            raise ValueError(f"file {i + 1} is not a results file: {problems[0]}")
    varying = {"date", "host", "shard", "command"}
    base = {k: v for k, v in docs[0]["provenance"].items() if k not in varying}
    for i, doc in enumerate(docs[1:], 2):
        other = {k: v for k, v in doc["provenance"].items() if k not in varying}
        if other != base:
            diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
            raise ValueError(f"file {i} was measured differently ({', '.join(diff)} differ)")
    prov = dict(docs[0]["provenance"])
    prov.pop("shard", None)
    prov["date"] = max(d["provenance"]["date"] for d in docs)
    prov["parts"] = [{k: d["provenance"].get(k) for k in ("host", "date", "shard", "command")} for d in docs]
    return [row for d in docs for row in d["results"]], prov


def validate_results(doc: dict) -> list[str]:
    """Problems with a results document (empty list when it follows the format in docs/method-format.md)."""
    problems = []
    if doc.get("schema") != 1:
        problems.append("schema must be 1")
    prov = doc.get("provenance")
    need = ["device", "torch", "transformers", "attention_backend", "git_commit", "date", "host", "command"]
    if not isinstance(prov, dict):
        problems.append("provenance must be an object")
    else:
        problems += [f"provenance.{k} missing" for k in need if k not in prov]
    rows = doc.get("results")
    if not isinstance(rows, list):
        return problems + ["results must be a list"]
    keys = ["method", "model", "params", "budget", "visual_tokens_before", "visual_tokens_after", "ttft_ms",
            "tpot_ms", "prefill_ms", "method_overhead_ms", "peak_memory_bytes", "kv_cache_bytes", "greedy_match",
            "first_token_kl", "accuracy", "repeats"]
    for i, row in enumerate(rows):
        problems += [f"results[{i}].{k} missing" for k in keys if k not in row]
    return problems

"""Method cards (lvlm_atlas/methods/cards/*.yaml) as pages, their measured results (catalog/benchmarks/*.json),
and the "run this method" / "measured results" sections of paper pages."""
from __future__ import annotations

from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.site import urls
from lvlm_atlas.site.cards import MethodCard
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import safe_href, code, esc, front_matter_title
from lvlm_atlas.site.registry import register_page_builder, register_paper_section
from lvlm_atlas.site.pages.costmodel import theoretical_savings

STAGE_LABELS = {"vision": "vision encoder", "pre_llm": "between encoder and LLM", "in_llm": "inside the LLM",
                "kv": "KV cache", "cache": "cache", "decode": "decoding"}

# Result columns shown when present, in this order: (key, header, formatter)
def _num(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return esc(v)


def _mib(v) -> str:
    return f"{v / 2**20:,.1f} MiB" if isinstance(v, (int, float)) and not isinstance(v, bool) else esc(v)


def _params(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{esc(k)}={esc(val)}" for k, val in v.items()) or "defaults"
    return esc(v)


RESULT_COLUMNS = [
    ("model", "Model", esc), ("params", "Parameters", _params), ("budget", "Budget", _num),
    ("visual_tokens_before", "Visual tokens (before)", _num), ("visual_tokens_after", "Visual tokens (after)", _num),
    ("ttft_ms", "TTFT ms", _num), ("tpot_ms", "TPOT ms", _num), ("prefill_ms", "Prefill ms", _num),
    ("method_overhead_ms", "Overhead ms", _num), ("peak_memory_bytes", "Peak memory", _mib),
    ("kv_cache_bytes", "KV cache", _mib), ("greedy_match", "Greedy match", _num),
    ("first_token_kl", "First-token KL", _num), ("accuracy", "Accuracy", _num), ("repeats", "Repeats", _num),
    ("roofline", "Measured / roofline bound", lambda v: _vs_bound(v)),
]
PROVENANCE_KEYS = ("device", "torch", "transformers", "attention_backend", "git_commit", "date", "command")


def _vs_bound(v) -> str:
    """'prefill 3.1x, TPOT 1.4x (h100)' from a results row's `roofline` (None on CPUs: no bound)."""
    if not isinstance(v, dict):
        return "–"
    parts = [f"{label} {v[key]:.1f}x" for key, label in (("prefill_vs_bound", "prefill"), ("tpot_vs_bound", "TPOT"))
             if isinstance(v.get(key), (int, float))]
    return esc(", ".join(parts) + f" ({v.get('gpu', '?')})") if parts else "–"


def run_command(card: MethodCard) -> str:
    return f"atlas run {card.name} --model tiny-llava --image IMAGE.jpg --prompt \"Describe the image.\""


def weights_of(row: dict) -> str:
    """'random weights' for the offline presets and `@random` models, else 'pretrained weights'."""
    model = str(row.get("model", ""))
    return "random weights" if model.startswith("tiny-") or "@random" in model else "pretrained weights"


def hardware_of(prov: dict) -> str:
    device = str(prov.get("device", "?"))
    return "CPU" if device.lower().startswith("cpu") else device


def run_groups(rows: list[tuple[dict, dict]]) -> dict[tuple[str, str], list[tuple[dict, dict]]]:
    """Rows grouped by (hardware, weights), GPU groups first."""
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for r, prov in rows:
        groups.setdefault((hardware_of(prov), weights_of(r)), []).append((r, prov))
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0] == "CPU", kv[0])))


GROUP_NOTES = {
    "random": ("Random weights: these rows measure visual tokens kept, KV bytes, time and agreement with the "
               "unmodified model in the same run (the *none* rows), never accuracy, which is why there is no "
               "accuracy column."),
    "cpu": ("CPU smoke test: this checks that the method runs end to end and what it keeps. Timings on a shared "
            "CPU are not benchmark results."),
}


def results_table(rows: list[tuple[dict, dict]], baseline: list[tuple[dict, dict]] | None = None) -> str:
    """Rows of one (hardware, weights) group, with the unmodified model's rows of the same runs first."""
    rows = list(baseline or []) + [x for x in rows if x not in (baseline or [])]
    if not rows:
        return ""
    random_w = all(weights_of(r) == "random weights" for r, _ in rows)
    cpu = all(hardware_of(p) == "CPU" for _, p in rows)
    skip = {"accuracy"} if random_w else set()
    if cpu:
        skip |= {"roofline"}
    cols = [c for c in RESULT_COLUMNS if c[0] not in skip and any(c[0] in r for r, _ in rows)]
    prov_cols = [k for k in ("attention_backend",) if any(k in p for _, p in rows)]
    head = ["Method"] + [h for _, h, _ in cols] + [k.replace("_", " ").capitalize() for k in prov_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, prov in rows:
        name = "none (unmodified model)" if r.get("method") == "none" else esc(r.get("method", "?"))
        cells = [name] + [fmt(r[k]) if k in r else "–" for k, _, fmt in cols] + [esc(prov.get(k, "–")) for k in prov_cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def baseline_rows(ctx: RenderContext, rows: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
    """The unmodified model's rows from the same runs (same provenance) and models as `rows`."""
    models = {r.get("model") for r, _ in rows}
    provs = [p for _, p in rows]
    return [(r, p) for r, p in ctx.indexes.results_for("none") if r.get("model") in models and p in provs]


def measured_sections(ctx: RenderContext, rows: list[tuple[dict, dict]], level: str = "###") -> list[str]:
    out = []
    for (hardware, weights), group in run_groups(rows).items():
        notes = []
        if weights == "random weights":
            notes.append(GROUP_NOTES["random"])
        if hardware == "CPU":
            notes.append(GROUP_NOTES["cpu"])
        title = f"{'CPU smoke test' if hardware == 'CPU' else esc(hardware)}, {weights}"
        out += [f"{level} {title}", "", " ".join(notes), "", results_table(group, baseline_rows(ctx, group))]
    return out


def provenance_list(ctx: RenderContext, name: str) -> str:
    out = []
    for run in ctx.indexes.benchmarks:
        if not any(r.get("method") == name for r in run.results):
            continue
        prov = run.provenance
        bits = [f"{k.replace('_', ' ')}: {code(prov[k])}" if k == "git_commit" else f"{k.replace('_', ' ')}: {esc(prov[k])}"
                for k in PROVENANCE_KEYS if k in prov and k != "command"]
        line = f"- {code(run.path.name)}" + (" — " + "; ".join(bits) if bits else "")
        if "command" in prov:
            line += f"<br>command: <code>{esc(prov['command'])}</code>"
        out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def _claims(card: MethodCard) -> str:
    claims = [c for c in card.data.get("claims") or [] if isinstance(c, dict)]
    if not claims:
        return "_No claims recorded on the card._\n"
    keys = ["model", "benchmark", "metric", "value", "baseline", "setting"]
    lines = ["| Model | Benchmark | Metric | Value | Baseline | Setting |", "|---|---|---|---|---|---|"]
    for c in claims:
        lines.append("| " + " | ".join(_num(c[k]) if k in c and c[k] is not None else "–" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _parameters(card: MethodCard) -> str:
    params = [p for p in card.data.get("parameters") or [] if isinstance(p, dict)]
    if not params:
        return "_This method has no parameters._\n"
    lines = ["| Name | Type | Default | Meaning |", "|---|---|---|---|"]
    for p in params:
        lines.append(f"| {code(p.get('name'))} | {esc(p.get('type', '–'))} | {_num(p.get('default', '–'))} | {esc(p.get('description', ''))} |")
    return "\n".join(lines) + "\n"


def _fidelity_sections(d: dict) -> list[str]:
    """The official code read, our deviations from it, and what was compared (the card's own words)."""
    out = ["## Official code and fidelity", ""]
    off = d.get("official")
    if off:
        href = safe_href(off.get("repository"))
        repo = f"[{esc(off['repository'])}]({href})" if href else esc(off.get("repository"))
        out += [f"- **Read:** {repo}, {code(off.get('file'))} at commit {code(off.get('commit'))}",
                f"- **Its rule, in our words:** {esc(off.get('rule'))}", ""]
    else:
        out += ["_No official code was compared for this method (see the notes)._", ""]
    devs = d.get("deviations") or []
    out += ["### Deviations", ""]
    out += ([f"- {esc(x.get('what'))} — *why:* {esc(x.get('why'))}"
             + (f" — *official behaviour:* {code(x['option'])}" if x.get("option") else "") for x in devs]
            or ["None stated: the default does what the official code does."])
    out += ["", "### Fidelity checks", ""]
    fid = d.get("fidelity") or []
    if fid:
        out += ["| Compared with | Input | Result | Details |", "|---|---|---|---|"]
        out += [f"| {esc(f.get('compared_with'))} | {esc(f.get('input'))} | **{esc(f.get('result'))}** | "
                f"{esc(f.get('details'))} |" for f in fid]
    else:
        out.append("_No comparison recorded yet._")
    return out + [""]


def _list(value) -> str:
    if isinstance(value, list):
        return ", ".join(esc(v) for v in value) or "–"
    return esc(value) if value is not None else "–"


def card_page(ctx: RenderContext, card: MethodCard) -> str:
    ctx = ctx.at(urls.method(card.name))
    d = card.data
    paper = ctx.catalog.by_id.get(card.paper or "")
    stage = d.get("stage")
    lines = ["---", front_matter_title(f"{card.label} (method card)"), "---", "",
             f"# {esc(card.label)}", ""]
    if d.get("summary"):
        lines += [esc(d["summary"]), ""]
    lines.append(f"- **Paper:** {ctx.paper_link(paper) + ': ' + esc(paper.title) if paper else esc(card.paper or 'not linked')}")
    lines.append(f"- **Registry name:** {code(card.name)}")
    if stage:
        lines.append(f"- **Acts:** {esc(STAGE_LABELS.get(stage, stage))} ({code(stage)})")
    if d.get("signal"):
        lines.append(f"- **Signal:** {esc(d['signal'])}")
    lines.append(f"- **Models:** {_list(d.get('models'))}")
    lines.append(f"- **Attention backends:** {_list(d.get('attention_backends'))}")
    if d.get("batch") is not None:
        lines.append(f"- **Batch size:** {esc(d['batch'])}")
    lines += ["", "## Parameters", "", _parameters(card), "## What the paper reports", "", _claims(card)]
    lines += _fidelity_sections(d)
    saving = theoretical_savings(d, ctx.link("cost-model.md"))
    if saving:
        lines += ["## Theoretical saving", "", saving]
    lines += ["## Measured here", ""]
    rows = ctx.indexes.results_for(card.name)
    if rows:
        lines += measured_sections(ctx, rows) + ["Runs:", "", provenance_list(ctx, card.name)]
    else:
        lines += ["_No measurements committed yet._ Run `atlas bench` and commit the JSON file "
                  "it writes to `catalog/benchmarks/`.", ""]
    lines += ["## How to run", "", "```bash", run_command(card), "```", ""]
    if d.get("notes"):
        lines += ["## Notes", "", esc(d["notes"]), ""]
    return "\n".join(lines)


def methods_index(ctx: RenderContext) -> str:
    ctx = ctx.at("methods/index.md")
    cards = sorted(ctx.indexes.cards.values(), key=lambda c: c.label.lower())
    lines = ["---", front_matter_title("Runnable methods"), "---", "", "# Runnable methods", "",
             "Published methods implemented in this project on Hugging Face `transformers` models. Each card "
             "lists the method's parameters, what its paper reports, what we measured, and how to run it.", ""]
    if not cards:
        lines.append("_No method cards yet._ A card is a YAML file in `lvlm_atlas/methods/cards/`; see "
                     "[Contributing](../contributing.md).\n")
        return "\n".join(lines)
    lines += ["| Method | Paper | Acts | Summary | Measured rows (GPU / CPU smoke) |", "|---|---|---|---|---|"]
    for c in cards:
        paper = ctx.catalog.by_id.get(c.paper or "")
        measured = ctx.indexes.results_for(c.name)
        n_gpu = sum(1 for _, p in measured if hardware_of(p) != "CPU")
        n = f"{n_gpu} / {len(measured) - n_gpu}"
        stage = c.data.get("stage")
        lines.append(f"| [{esc(c.label)}]({ctx.method_url(c.name)}) | {ctx.paper_link(paper) if paper else '–'} | "
                     f"{esc(STAGE_LABELS.get(stage, stage)) if stage else '–'} | {esc(c.data.get('summary', ''))} | {n} |")
    return "\n".join(lines) + "\n"


@register_page_builder
def method_pages(ctx: RenderContext):
    yield "methods/index.md", methods_index(ctx)
    for card in sorted(ctx.indexes.cards.values(), key=lambda c: c.name):
        yield urls.method(card.name), card_page(ctx, card)


@register_paper_section(slot="run")
def run_this_method(ctx: RenderContext, paper: Paper) -> str | None:
    card = ctx.indexes.card_for(paper)
    if card is None:
        return None
    return (f"## Run this method\n\nImplemented here as [{esc(card.label)}]({ctx.method_url(card.name)}). "
            f"On a small random-weight model:\n\n```bash\n{run_command(card)}\n```\n")


@register_paper_section(slot="results")
def measured_results(ctx: RenderContext, paper: Paper) -> str | None:
    card = ctx.indexes.card_for(paper)
    if card is None:
        return None
    rows = ctx.indexes.results_for(card.name)
    if not rows:
        return None
    gpu = [x for x in rows if hardware_of(x[1]) != "CPU"]
    if not gpu:
        return (f"## Measured results\n\nOnly a CPU smoke test on random weights so far (it checks that the "
                f"implementation runs and what it keeps; it is not a benchmark result): see the "
                f"[method card]({ctx.method_url(card.name)}). Accuracy as the paper reports it is under "
                f"*Reported results* when the paper's tables have been collected.\n")
    return ("## Measured results\n\n" + "\n".join(measured_sections(ctx, gpu)) +
            f"\nProvenance of each run is on the [method card]({ctx.method_url(card.name)}).\n")

"""Results researchers can compare: leaderboards of what papers REPORT (catalog/results/), with provenance.

Pages:
- `results/index.md`: what is here, one link per leaderboard, the caveats;
- `results/<model>.md`: per model, one sortable table per visual-token budget (or KV budget) with the
  methods' own rows, each benchmark, the average, the share of the unpruned model *as the same paper
  reports it*, the training-free flag and the source (paper version + table); an accuracy-vs-tokens SVG
  plot with one line per method; where papers report different unpruned baselines for the model; and a
  "reported by" view for methods that appear in several papers' tables (values differ: both shown).
- paper pages: "Reported results" (the paper's own tables) and "Compared against" / "Compared by"
  (baseline rows make comparison edges).
- `assets/data/results.json` / `results.csv`: the flat rows, for the Exports page.

Numbers come from the papers, never from our runs; every value is escaped; the SVG holds only numbers
and escaped labels.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from html import escape as _html_escape

from lvlm_atlas.catalog.results import ResultsFile, comparisons, load_vocab
from lvlm_atlas.site import urls
from lvlm_atlas.site.blocks import a, region
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import esc, front_matter_title, safe_href
from lvlm_atlas.site.registry import register_page_builder, register_paper_section

INDEX = "results/index.md"
DATA_JSON = "assets/data/results.json"
DATA_CSV = "assets/data/results.csv"
# column order of the usual LLaVA-1.5 protocol first, then the rest alphabetically
PREFERRED = ("gqa", "mmbench", "mmbench-cn", "mme", "mme-total", "pope", "sqa-img", "vqav2", "textvqa", "mmmu",
             "seed", "vizwiz", "mmvet", "llava-bench")
SPEED = ("tflops", "prefill-ms", "latency-s", "throughput", "memory-gb")


@dataclass(frozen=True)
class Row:
    source_paper: str       # the paper whose table the numbers come from
    version: str
    url: str
    note: str | None
    table: str
    model: str
    method: str             # catalog id or "unpruned"
    role: str
    variant: str | None
    setting: tuple          # (kind, value)
    scores: tuple           # ((benchmark, value), ...)
    hardware: str | None

    @property
    def score(self) -> dict[str, float]:
        return dict(self.scores)

    @property
    def budget_label(self) -> str:
        kind, value = self.setting
        return {"visual_tokens": f"{value} visual tokens", "retention": f"{value:.1%} of visual tokens",
                "kv_budget": f"{value:.0%} KV cache", "kv_tokens": f"{value} KV entries",
                "kv_bits": f"{value:g}-bit KV cache",
                "flops_ratio": f"{value:.1%} of the unpruned FLOPs"}.get(kind, f"{kind} {value}")


def _setting(s) -> tuple:
    for kind in ("visual_tokens", "retention", "flops_ratio", "kv_budget", "kv_tokens", "kv_bits"):
        value = getattr(s, kind)
        if value is not None:
            return kind, value
    raise ValueError("results setting without a budget")  # the results model forbids this


def flatten(files: list[ResultsFile]) -> list[Row]:
    rows = []
    for f in files:
        for t in f.tables:
            for r in t.rows:
                rows.append(Row(f.paper, f.version, f.url, f.note, t.source, t.model, r.method, r.role, r.variant,
                                _setting(r.setting), tuple(sorted(r.scores.items())), r.hardware))
    return rows


@cache
def _vocab() -> dict:
    return load_vocab()


def bench_label(key: str) -> str:
    spec = _vocab()["benchmarks"].get(key)
    return spec["label"] if spec else key


def model_label(key: str) -> str:
    return _vocab()["models"].get(key, key)


def _accuracy_keys(keys) -> list[str]:
    """Benchmarks whose values are percentages (the average is taken over these)."""
    bench = _vocab()["benchmarks"]
    return [k for k in keys if k in bench and bench[k]["max"] == 100 and k not in SPEED]


def _order(keys) -> list[str]:
    keys = set(keys)
    return [k for k in PREFERRED if k in keys] + sorted(keys - set(PREFERRED) - set(SPEED)) + \
        [k for k in SPEED if k in keys]


def unpruned_for(rows: list[Row], row: Row) -> Row | None:
    """The unpruned row the same paper reports for the same model (same table first)."""
    same = [r for r in rows if r.role == "unpruned" and r.source_paper == row.source_paper and r.model == row.model]
    for r in same:
        if r.table == row.table:
            return r
    return same[0] if same else None


def relative(row: Row, base: Row | None) -> float | None:
    """Mean over shared accuracy-type benchmarks (MME included) of value / unpruned value, in percent."""
    if base is None:
        return None
    b = base.score
    keys = [k for k in row.score if k in b and b[k] and k not in SPEED]
    if not keys:
        return None
    return 100.0 * sum(row.score[k] / b[k] for k in keys) / len(keys)


def _cell(v: float | None) -> str:
    """A sortable cell: whole numbers as printed, others with one decimal, '–' when absent."""
    if v is None:
        return '<td data-sort="">–</td>'
    return f'<td data-sort="{v}">{v:g}</td>' if float(v).is_integer() else f'<td data-sort="{v}">{v:.1f}</td>'


def _source_link(ctx: RenderContext, row: Row) -> str:
    href = safe_href(row.url)
    label, title = esc(row.table), esc(f"{row.table} of {row.version}")
    link = f'<a href="{href}" rel="noopener nofollow" title="{title}">{label}</a>' if href else label
    return f'<span class="atlas-nowrap">{link}</span> <small>({esc(row.version)})</small>'



def _method_cell(ctx: RenderContext, row: Row) -> str:
    if row.method == "unpruned":
        return "<em>unpruned</em>"
    paper = ctx.catalog.by_id.get(row.method)
    name = esc(paper.name) if paper else esc(row.method)
    text = a(ctx.href(urls.paper(row.method)), name) if paper else name
    return text + (f" <small>({esc(row.variant)})</small>" if row.variant else "")


def model_slug(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in model)


def leaderboards(rows: list[Row], model: str) -> dict[tuple, list[Row]]:
    """(setting kind, value) -> the methods' own rows (and the unpruned reference) for one model."""
    order = {"visual_tokens": 0, "retention": 1, "kv_budget": 2, "kv_tokens": 3, "kv_bits": 4, "flops_ratio": 5}
    boards: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        if r.model == model and r.role == "own" and any(k not in SPEED for k in r.score):
            boards[r.setting].append(r)
    return dict(sorted(boards.items(), key=lambda kv: (order.get(kv[0][0], 9), -kv[0][1])))


def speed_rows(rows: list[Row], model: str) -> list[Row]:
    return [r for r in rows if r.model == model and any(k in SPEED for k in r.score)]


def speed_table(ctx: RenderContext, rows: list[Row]) -> str:
    keys = [k for k in SPEED if any(k in r.score for r in rows)]
    head = "".join(f"<th>{h}</th>" for h in ["Method", "Setting", "Role"] + [esc(bench_label(k)) for k in keys]
                   + ["Hardware", "Source"])
    body = "".join(f"<tr><td>{_method_cell(ctx, r)}</td><td>{esc(r.budget_label)}</td><td>{esc(r.role)}</td>"
                   + "".join(_cell(r.score.get(k)) for k in keys)
                   + f"<td>{esc(r.hardware or '–')}</td><td>{_source_link(ctx, r)}</td></tr>" for r in rows)
    return (f'<div class="atlas-scroll"><table class="atlas-sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def leaderboard_table(ctx: RenderContext, rows: list[Row], board: list[Row], table_id: str) -> str:
    keys = [k for k in _order({k for r in board for k in r.score}) if k not in SPEED]
    acc = _accuracy_keys(keys)
    head = (["Method", "Venue", "Training-free"] + [esc(bench_label(k)) for k in keys]
            + ["Average", "% of unpruned (same paper)", "Source"])
    body = []
    for r in sorted(board, key=lambda r: -(relative(r, unpruned_for(rows, r)) or 0)):
        paper = ctx.catalog.by_id.get(r.method)
        venue = esc(paper.venue) if paper and paper.venue else (f"Preprint {paper.year}" if paper else "–")
        tf = {True: "yes", False: "no", None: "n/a"}[paper.training_free] if paper else "–"
        vals = [r.score.get(k) for k in keys]
        shared = [r.score[k] for k in acc if k in r.score]
        avg = sum(shared) / len(shared) if shared else None
        rel = relative(r, unpruned_for(rows, r))
        body.append("<tr>" + f"<td>{_method_cell(ctx, r)}</td><td>{venue}</td><td>{tf}</td>"
                    + "".join(_cell(v) for v in vals) + _cell(None if avg is None else round(avg, 2))
                    + _cell(None if rel is None else round(rel, 1)) + f"<td>{_source_link(ctx, r)}</td></tr>")
    ths = "".join(f"<th>{h}</th>" for h in head)
    return (f'<div class="atlas-scroll"><table class="atlas-sortable atlas-leaderboard" id="{table_id}">\n'
            f"<thead><tr>{ths}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table></div>")


def plot(ctx: RenderContext, rows: list[Row], model: str) -> str:
    """Accuracy relative to the unpruned model (same paper) vs visual tokens kept, one line per method."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r.model == model and r.role == "own" and r.setting[0] == "visual_tokens":
            rel = relative(r, unpruned_for(rows, r))
            if rel is not None:
                paper = ctx.catalog.by_id.get(r.method)
                label = (paper.name if paper else r.method) + (f" ({r.variant})" if r.variant else "")
                series[label].append((int(r.setting[1]), rel))
    series = {k: sorted(v) for k, v in series.items() if v}
    if not series:
        return ""
    xs = [x for v in series.values() for x, _ in v]
    ys = [y for v in series.values() for _, y in v]
    x0, x1 = math.log2(min(xs)), math.log2(max(xs))
    y0, y1 = min(80.0, math.floor(min(ys) / 5) * 5), max(100.0, math.ceil(max(ys) / 5) * 5)
    w, h, ml, mr, mt, mb = 760, max(380, 40 + 18 * len(series)), 60, 240, 20, 50
    pw, ph = w - ml - mr, h - mt - mb

    def px(x): return ml + (0.5 if x1 == x0 else (math.log2(x) - x0) / (x1 - x0)) * pw
    def py(y): return mt + (1 - (y - y0) / (y1 - y0)) * ph

    palette = ["#3f6fb5", "#b5533f", "#1b7f3b", "#8a4fb0", "#b26a00", "#2a9d8f", "#6d6875", "#e76f51", "#264653",
               "#9c6644", "#588157", "#c9184a"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'font-family="sans-serif" font-size="12"><title>{_html_escape(model_label(model))}: reported accuracy relative to the unpruned '
             'model vs visual tokens kept</title>',
             f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="#888"/>',
             f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" stroke="#888"/>']
    for y in range(int(y0), int(y1) + 1, 5):
        parts.append(f'<line x1="{ml}" y1="{py(y):.1f}" x2="{ml + pw}" y2="{py(y):.1f}" stroke="#ddd"/>'
                     f'<text x="{ml - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y}%</text>')
    last = -1e9
    for x in sorted(set(xs)):
        if px(x) - last >= 24:   # skip tick labels that would overlap their neighbour
            parts.append(f'<text x="{px(x):.1f}" y="{mt + ph + 18}" text-anchor="middle">{x}</text>')
            last = px(x)
    parts.append(f'<text x="{ml + pw / 2}" y="{h - 8}" text-anchor="middle">visual tokens kept (log scale)</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = palette[i % len(palette)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"><title>'
                  f'{_html_escape(name)}: {y:.1f}% at {x} tokens</title></circle>' for x, y in pts]
        label = name if len(name) <= 34 else name[:33] + "…"
        parts.append(f'<rect x="{ml + pw + 14}" y="{mt + 4 + i * 18}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{ml + pw + 30}" y="{mt + 13 + i * 18}">{_html_escape(label)}</text>')
    parts.append("</svg>")
    return ('<figure class="atlas-figure">' + "".join(parts) + "<figcaption>Each method's own rows, relative to the "
            "unpruned model reported in the same paper (average over the benchmarks of the row).</figcaption></figure>")


def baseline_notes(ctx: RenderContext, rows: list[Row], model: str) -> str:
    """Where papers report different unpruned numbers for the same model and benchmark."""
    seen: dict[str, dict[float, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.model == model and r.role == "unpruned":
            for k, v in r.score.items():
                if k not in SPEED and r.source_paper not in seen[k][v]:
                    seen[k][v].append(r.source_paper)
    items = []
    for k in _order(seen):
        values = seen[k]
        if len(values) > 1:
            parts = "; ".join(f"{v:g} ({', '.join(esc(ctx.catalog.by_id[p].name) if p in ctx.catalog.by_id else esc(p) for p in ps)})"
                              for v, ps in sorted(values.items()))
            items.append(f"<li><strong>{esc(bench_label(k))}</strong>: {parts}</li>")
    if not items:
        return "<p>All papers here report the same unpruned numbers for this model.</p>"
    return ("<p>Papers report different numbers for the <em>unpruned</em> model (evaluation settings differ), "
            "which is why each row is also given relative to its own paper's unpruned row:</p>\n<ul>\n"
            + "\n".join(items) + "\n</ul>")


def reported_by(ctx: RenderContext, rows: list[Row], model: str) -> str:
    """Methods whose numbers appear in more than one paper's tables, each value attributed."""
    by_method: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.model == model and r.role in ("own", "baseline"):
            by_method[r.method].append(r)
    multi = {m: rs for m, rs in by_method.items() if len({r.source_paper for r in rs}) > 1}
    if not multi:
        return "<p>No method of this model appears in more than one paper's tables yet.</p>"
    out = []
    for m in sorted(multi):
        rs = sorted(multi[m], key=lambda r: (r.setting, r.role != "own", r.source_paper))
        keys = _order({k for r in rs for k in r.score if k not in SPEED})
        head = "".join(f"<th>{h}</th>" for h in ["Setting", "Reported by", "Role"] + [esc(bench_label(k)) for k in keys])
        body = []
        for r in rs:
            src = ctx.catalog.by_id.get(r.source_paper)
            who = a(ctx.href(urls.paper(r.source_paper)), esc(src.name)) if src else esc(r.source_paper)
            body.append(f"<tr><td>{esc(r.budget_label)}</td><td>{who} ({_source_link(ctx, r)})</td>"
                        f"<td>{'own method' if r.role == 'own' else 're-run as a baseline'}</td>"
                        + "".join(_cell(r.score.get(k)) for k in keys) + "</tr>")
        name = ctx.catalog.by_id[m].name if m in ctx.catalog.by_id else m
        out.append(f'<h3 id="reported-{esc(m)}">{esc(name)}</h3>\n<div class="atlas-scroll"><table class="atlas-sortable">'
                   f"<thead><tr>{head}</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")
    return "\n".join(out)


def model_page(ctx: RenderContext, rows: list[Row], model: str) -> str:
    page = f"results/{model_slug(model)}.md"
    ctx = ctx.at(page)
    boards = leaderboards(rows, model)
    papers = sorted({r.source_paper for r in rows if r.model == model})
    parts = [f"<p>Numbers as the papers report them ({len(papers)} paper(s)); nothing here was measured by us. "
             "Each row links the paper version and table it comes from. <strong>% of unpruned</strong> divides each "
             "benchmark by the unpruned model's value <em>reported in the same paper</em> and averages over the "
             "benchmarks the row has, so rows from papers with different evaluation setups stay comparable. "
             "Click a column header to sort.</p>"]
    fig = plot(ctx, rows, model)
    if fig:
        parts += ['<h2 id="plot">Accuracy vs visual tokens kept</h2>', fig]
    for i, (setting, board) in enumerate(boards.items()):
        label = board[0].budget_label
        parts += [f'<h2 id="budget-{i}">{esc(label)}</h2>', leaderboard_table(ctx, rows, board, f"lb-{i}")]
    speed = speed_rows(rows, model)
    if speed:
        parts += ['<h2 id="speed">Reported speed and memory</h2>',
                  "<p>As each paper measured it, on its own hardware; compare within a paper, not across papers.</p>",
                  speed_table(ctx, speed)]
    parts += ['<h2 id="baselines">Unpruned baselines</h2>', baseline_notes(ctx, rows, model),
              '<h2 id="reported-by">Reported by several papers</h2>', reported_by(ctx, rows, model)]
    return "\n".join(["---", front_matter_title(f"Results: {model_label(model)}"), "---", "",
                      f"# Reported results: {esc(model_label(model))}", "",
                      region("\n".join(parts), searchable=False)])


def index_page(ctx: RenderContext, rows: list[Row]) -> str:
    ctx = ctx.at(INDEX)
    models = sorted({r.model for r in rows}, key=lambda m: (-sum(1 for r in rows if r.model == m), m))
    lines = ["---", front_matter_title("Results"), "---", "", "# Results", "",
             "What the papers **report**, collected table by table with provenance (paper version and table or "
             "figure), so that methods can be compared at the same budget on the same model. These numbers are "
             "not ours: each comes from the paper it is attributed to, and evaluation setups differ between "
             "papers (see each page's *Unpruned baselines*).", "",
             f"{len({r.source_paper for r in rows})} papers, {len(rows)} rows. Add a paper's numbers with a "
             "`catalog/results/<paper-id>.yaml` file (format in `lvlm_atlas/catalog/results.py`); "
             "`atlas validate` checks models, benchmarks, ranges, duplicates and that every row names its setting.", "",
             "| Model | Papers | Leaderboards |", "|---|---|---|"]
    for m in models:
        n_papers = len({r.source_paper for r in rows if r.model == m})
        n_boards = len(leaderboards(rows, m))
        lines.append(f"| [{esc(model_label(m))}]({ctx.link(f'results/{model_slug(m)}.md')}) | {n_papers} | {n_boards} |")
    lines += ["", "## Measured here", "",
              "Our own runs are on each [method card](../methods/index.md) under *Measured here*. Runs on random "
              "weights measure tokens kept, bytes and time, never accuracy; runs on a CPU are smoke tests of the "
              "code, not benchmark results.", "",
              f"Downloads: [results.json](../{DATA_JSON}), [results.csv](../{DATA_CSV}).", ""]
    return "\n".join(lines)


def records(rows: list[Row]) -> list[dict]:
    return [{"source_paper": r.source_paper, "paper_version": r.version, "url": r.url, "table": r.table,
             "model": r.model, "method": r.method, "role": r.role, "variant": r.variant,
             "setting": r.setting[0], "setting_value": r.setting[1], "hardware": r.hardware,
             "scores": dict(r.scores)} for r in rows]


def csv_text(rows: list[Row]) -> str:
    keys = _order({k for r in rows for k in r.score})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source_paper", "paper_version", "table", "model", "method", "role", "variant", "setting",
                "setting_value", "hardware"] + keys)
    for r in rows:
        s = r.score
        w.writerow([r.source_paper, r.version, r.table, r.model, r.method, r.role, r.variant or "", r.setting[0],
                    r.setting[1], r.hardware or ""] + ["" if s.get(k) is None else s[k] for k in keys])
    return buf.getvalue()


def rows_of(ctx: RenderContext) -> list[Row]:
    if "results_rows" not in ctx.extra:
        ctx.extra["results_rows"] = flatten(ctx.catalog.results)
    return ctx.extra["results_rows"]


@register_page_builder
def results_pages(ctx: RenderContext):
    rows = rows_of(ctx)
    yield INDEX, index_page(ctx, rows)
    for model in sorted({r.model for r in rows}):
        yield f"results/{model_slug(model)}.md", model_page(ctx, rows, model)
    yield DATA_JSON, json.dumps(records(rows), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    yield DATA_CSV, csv_text(rows)


@register_paper_section
def reported_results(ctx: RenderContext, paper) -> str | None:
    rows = [r for r in rows_of(ctx) if r.source_paper == paper.id]
    if not rows:
        return None
    parts = ['<h2 id="reported-results">Reported results</h2>',
             f'<p>As reported in the paper ({esc(rows[0].version)}); leaderboards: '
             + ", ".join(a(ctx.href(f"results/{model_slug(m)}.md"), esc(model_label(m)))
                         for m in sorted({r.model for r in rows})) + ".</p>"]
    if rows[0].note:
        parts.append(f"<p><strong>Note:</strong> {esc(rows[0].note)}</p>")
    by_table: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        by_table[(r.table, r.model)].append(r)
    for (table, model), rs in by_table.items():
        keys = _order({k for r in rs for k in r.score})
        hw = any(r.hardware for r in rs)
        head = "".join(f"<th>{h}</th>" for h in ["Method", "Setting"] + [esc(bench_label(k)) for k in keys]
                       + (["Hardware"] if hw else []))
        body = "".join(f"<tr><td>{_method_cell(ctx, r)}{' <small>(baseline)</small>' if r.role == 'baseline' else ''}"
                       f"</td><td>{esc(r.budget_label)}</td>" + "".join(_cell(r.score.get(k)) for k in keys)
                       + (f"<td>{esc(r.hardware or '–')}</td>" if hw else "") + "</tr>"
                       for r in rs)
        parts.append(f"<h3>{esc(table)}: {esc(model_label(model))}</h3>\n<div class=\"atlas-scroll\">"
                     f'<table class="atlas-sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
    return region("\n".join(parts), searchable=False)


def comparison_edges(files) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(paper -> methods it re-ran as baselines, method -> papers that re-ran it)."""
    against: dict[str, set[str]] = defaultdict(set)
    by: dict[str, set[str]] = defaultdict(set)
    for u, v in comparisons(files):
        against[u].add(v)
        by[v].add(u)
    return ({k: sorted(v) for k, v in against.items()}, {k: sorted(v) for k, v in by.items()})


@register_paper_section
def compared(ctx: RenderContext, paper) -> str | None:
    if "comparisons" not in ctx.extra:
        ctx.extra["comparisons"] = comparison_edges(ctx.catalog.results)
    against, by = ctx.extra["comparisons"]
    mine, others = against.get(paper.id, []), by.get(paper.id, [])
    if not mine and not others:
        return None

    def names(ids):
        return ", ".join(a(ctx.href(urls.paper(i)), esc(ctx.catalog.by_id[i].name)) if i in ctx.catalog.by_id
                         else esc(i) for i in ids)

    parts = ['<h2 id="comparisons">Comparisons in reported tables</h2>', "<ul>"]
    if mine:
        parts.append(f"<li><strong>Compared against</strong> (re-run as baselines in this paper's tables): {names(mine)}</li>")
    if others:
        parts.append(f"<li><strong>Compared by</strong> (papers whose tables re-run this method): {names(others)}</li>")
    parts.append("</ul>")
    return region("\n".join(parts), searchable=False)

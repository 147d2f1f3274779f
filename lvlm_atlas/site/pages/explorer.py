"""The Explorer: one client-side table of all papers. The page holds the filter controls (built from
the taxonomy); the rows come from a generated JSON file that docs/assets/javascripts/explorer.js
renders with textContent only (data never becomes markup)."""
from __future__ import annotations

import json

from lvlm_atlas.site import urls
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import attr, esc, front_matter_title, safe_href
from lvlm_atlas.site.registry import register_page_builder

DATA_PATH = "assets/data/papers.json"
PAGE = "explorer.md"


def records(ctx: RenderContext) -> dict:
    tax = ctx.taxonomy
    rows = []
    for p in ctx.papers:
        code = next((str(c.url) for c in p.links.code if c.official), None) or (str(p.links.code[0].url) if p.links.code else None)
        rows.append({
            "id": p.id,
            "name": p.name,
            "title": p.title,
            "authors": list(p.authors),
            "year": p.year,
            "date": p.date,
            "added": p.added.isoformat(),
            "venue": p.venue or "",
            "stage": p.stages(tax) or ["other"],
            "category": tax.node_by_id[p.primary_node].label,
            "bottleneck": list(p.bottleneck),
            "granularity": list(p.granularity),
            "modality": list(p.modality),
            "training_free": p.training_free,
            "code": code if code and safe_href(code) else None,
            "runnable": ctx.indexes.runnable(p),
            "candidate": p.candidate,
            "summary": p.summary,
            "url": urls.page_url(urls.paper(p.id), ctx.directory_urls),
        })
    labels = {"stage": {s.id: s.label for s in tax.stages} | {"other": "Models, benchmarks, surveys"}}
    for f in ("bottleneck", "granularity", "modality"):
        labels[f] = {t.id: t.label for t in tax.facets[f]}
    return {"schema": 1, "count": len(rows), "labels": labels, "papers": rows}


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{attr(v)}">{esc(t)}</option>' for v, t in options)
    return (f'<label class="atlas-filter"><span>{esc(label)}</span>'
            f'<select id="ax-{name}" name="{name}"><option value="">Any</option>{opts}</select></label>')


def explorer_page(ctx: RenderContext) -> str:
    ctx = ctx.at(PAGE)
    tax = ctx.taxonomy
    years = sorted({p.year for p in ctx.papers}, reverse=True)
    selects = [
        _select("stage", "Stage", [(s.id, s.label) for s in tax.stages] + [("other", "Models, benchmarks, surveys")]),
        _select("bottleneck", "Bottleneck", [(t.id, t.label) for t in tax.facets["bottleneck"]]),
        _select("granularity", "Granularity", [(t.id, t.label) for t in tax.facets["granularity"]]),
        _select("modality", "Modality", [(t.id, t.label) for t in tax.facets["modality"]]),
        _select("year", "Year", [(str(y), str(y)) for y in years]),
    ]
    cols = [("name", "Method"), ("year", "Year"), ("venue", "Venue"), ("stage", "Stage"), ("category", "Category"),
            ("summary", "Key idea"), ("code", "Code")]
    head = "".join(f'<th data-key="{k}" aria-sort="none"><button type="button">{esc(t)}</button></th>' for k, t in cols)
    html = (
        f'<div id="atlas-explorer" data-src="{attr(ctx.href(DATA_PATH))}" data-root="{attr(ctx.href("index.md"))}">'
        '<form class="atlas-filters" role="search">'
        '<label class="atlas-filter atlas-filter--q"><span>Search</span>'
        '<input type="search" id="ax-q" name="q" placeholder="title, authors, key idea, venue…" autocomplete="off"></label>'
        + "".join(selects) +
        '<label class="atlas-filter atlas-filter--check"><input type="checkbox" id="ax-runnable" name="runnable" value="1">'
        '<span>Runnable here</span></label>'
        '<button type="button" id="ax-reset" class="md-button">Reset</button>'
        '</form>'
        f'<p id="ax-count" aria-live="polite">Loading {len(ctx.papers)} papers…</p>'
        f'<div class="atlas-table-wrap"><table id="ax-table"><thead><tr>{head}</tr></thead><tbody></tbody></table></div>'
        '<noscript>The Explorer needs JavaScript; the <a href="' + attr(ctx.href("categories/index.md")) + '">category pages</a> list the same papers.</noscript>'
        '</div>'
    )
    return "\n".join([
        "---", front_matter_title("Explorer"), "hide:", "  - navigation", "  - toc", "---", "",
        "# Explorer", "",
        "Every paper of the catalog in one table. Combine the filters, search free text, click a column to sort; "
        "the address bar keeps the filter so you can share the view.", "",
        html, "",
    ])


@register_page_builder
def explorer_pages(ctx: RenderContext):
    yield PAGE, explorer_page(ctx)
    yield DATA_PATH, json.dumps(records(ctx), ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"

"""Citation-graph pages of the site: the interactive whole-catalog graph and a section on every paper page.

Registered through the site's extension registry (`lvlm_atlas.site.plugins.MODULES` lists this module):

* page builder -> `graph.md` (interactive Cytoscape.js view over a layout computed here at build time,
  with a static SVG of the same layout as the no-JavaScript fallback) and
  `assets/data/citation-graph.json` (the data the page script reads);
* paper section (slot "citations") -> the paper's ego graph (SVG), "cites in the catalog",
  "cited by in the catalog", lineage and related papers.

Text from the catalog only ever reaches HTML escaped; the browser script inserts data with textContent
and Cytoscape draws labels on a canvas, so nothing from data is executed.
"""
from __future__ import annotations

import json
import math
from html import escape as _html_escape

from lvlm_atlas.enrich.store import load_store
from lvlm_atlas.graph.citations import BUILDS_ON, CITES, COMPARES, CitationGraph, build_graph
from lvlm_atlas.graph.layout import layout
from lvlm_atlas.site import urls
from lvlm_atlas.site.blocks import region
from lvlm_atlas.site.registry import register_page_builder, register_paper_section, register_shared_data

GRAPH_PAGE = "graph.md"
GRAPH_DATA = "assets/data/citation-graph.json"
CYTOSCAPE = "assets/vendor/cytoscape/cytoscape.min.js"
SCRIPT = "assets/javascripts/citation-graph.js"
STYLE = "assets/stylesheets/citation-graph.css"
STAGE_COLORS = {"encoding": "#3f6fb5", "prefilling": "#8a4fb0", "decoding": "#b5533f", "system": "#3f8f5f"}
OTHER_COLOR = "#777777"
FACETS = ("bottleneck", "granularity", "modality", "scenario", "kind")
EGO_LIMIT = 24  # most neighbours drawn on each side of an ego graph (by PageRank)


def h(text: object) -> str:
    """HTML-escaped text that Markdown and Jinja also leave alone."""
    return (_html_escape(str(text), quote=True).replace("{", "&#123;").replace("}", "&#125;")
            .replace("*", "&#42;").replace("_", "&#95;").replace("`", "&#96;").replace("[", "&#91;"))


class GraphView:
    """The graph, its PageRank and its layout, computed once per build (kept in ctx.extra)."""

    def __init__(self, ctx) -> None:
        catalog = ctx.catalog
        store = load_store(catalog.root / "enrichment" / "semantic_scholar.json")
        self.cg: CitationGraph = build_graph(catalog, store)
        self.pagerank = self.cg.pagerank()
        g = self.cg.graph
        nodes = sorted(g.nodes)
        self.positions = layout(nodes, sorted(g.edges), {n: g.nodes[n]["stage"] or "" for n in nodes})
        top = max(self.pagerank.values(), default=1.0) or 1.0
        self.weight = {n: math.sqrt(self.pagerank.get(n, 0.0) / top) for n in nodes}  # 0..1

    @classmethod
    def of(cls, ctx) -> "GraphView":
        view = ctx.extra.get("citation_graph")
        if view is None:
            view = ctx.extra["citation_graph"] = cls(ctx)
        return view


def _edge_kind(sources: set[str]) -> str:
    if CITES in sources and BUILDS_ON in sources:
        return "both"
    if BUILDS_ON in sources:
        return "builds_on"
    return "cites" if CITES in sources else "compares"


def graph_json(ctx, view: GraphView) -> str:
    page = ctx.at(GRAPH_PAGE)
    g = view.cg.graph
    tax = ctx.catalog.taxonomy
    order = sorted(g.nodes)
    index = {n: i for i, n in enumerate(order)}
    nodes = []
    for n in order:
        p = ctx.catalog.by_id[n]
        x, y = view.positions[n]
        nodes.append({
            "id": n, "name": p.name, "title": p.title, "year": p.year, "stage": g.nodes[n]["stage"],
            "x": x, "y": y, "size": round(8 + 32 * view.weight[n], 1),
            "pagerank": round(view.pagerank.get(n, 0.0), 6), "cited_by": g.in_degree(n), "cites": g.out_degree(n),
            "url": page.href(urls.paper(n)),
            "facets": {f: [f"{f}:{t}" for t in ([p.kind] if f == "kind" else getattr(p, f))] for f in FACETS},
        })
    edges = [[index[u], index[v], _edge_kind(s)] for u, v, s in sorted(g.edges(data="sources"))]
    facet_terms = []
    for f in FACETS:
        for t in tax.facets[f]:
            key = f"{f}:{t.id}"
            if any(key in node["facets"][f] for node in nodes):
                facet_terms.append({"key": key, "label": f"{f}: {t.label}"})
    doc = {
        "stages": [{"id": s.id, "label": s.label, "color": STAGE_COLORS.get(s.id, OTHER_COLOR)}
                   for s in tax.stages],
        "facets": facet_terms, "nodes": nodes, "edges": edges,
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def overview_svg(ctx, view: GraphView) -> str:
    """The whole graph as a static SVG (same layout); every node links to its paper page."""
    page = ctx.at(GRAPH_PAGE)
    g = view.cg.graph
    pad = 20
    parts = [f'<svg class="atlas-graph-svg" xmlns="http://www.w3.org/2000/svg" viewBox="{-pad} {-pad} '
             f'{1000 + 2 * pad} {1000 + 2 * pad}" role="img" aria-labelledby="atlas-graph-svg-title">',
             '<title id="atlas-graph-svg-title">Citation graph of the catalog</title>']
    if g.number_of_edges():
        d = " ".join(f"M{view.positions[u][0]} {view.positions[u][1]}L{view.positions[v][0]} {view.positions[v][1]}"
                     for u, v in sorted(g.edges))
        parts.append(f'<path d="{d}" stroke="#999" stroke-opacity="0.5" stroke-width="0.8" fill="none"/>')
    for n in sorted(g.nodes, key=lambda n: (view.weight[n], n)):  # big nodes drawn last (on top)
        p = ctx.catalog.by_id[n]
        x, y = view.positions[n]
        r = round(3 + 9 * view.weight[n], 1)
        color = STAGE_COLORS.get(g.nodes[n]["stage"], OTHER_COLOR)
        parts.append(f'<a href="{h(page.href(urls.paper(n)))}" data-paper="{h(n)}"><circle cx="{x}" cy="{y}" r="{r}" '
                     f'fill="{color}"><title>{h(p.name)}: {h(p.title)}</title></circle></a>')
    parts.append("</svg>")
    return "".join(parts)


def graph_page(ctx, view: GraphView) -> str:
    page = ctx.at(GRAPH_PAGE)
    g = view.cg.graph
    n_cites = sum(1 for *_, s in g.edges(data="sources") if CITES in s)
    n_builds = sum(1 for *_, s in g.edges(data="sources") if BUILDS_ON in s)
    n_cmp = sum(1 for *_, s in g.edges(data="sources") if COMPARES in s)
    legend = " ".join(f'<span class="atlas-graph-key"><span class="atlas-graph-dot" style="background:'
                      f'{STAGE_COLORS.get(s.id, OTHER_COLOR)}"></span>{h(s.label)}</span>' for s in ctx.taxonomy.stages)
    stage_boxes = "".join(f'<label><input type="checkbox" name="stage" value="{h(s.id)}" checked> {h(s.label)}</label> '
                          for s in ctx.taxonomy.stages)
    lines = [
        "---", "title: Citation graph", "---", "", "# Citation graph", "",
        f"{g.number_of_nodes()} papers, {g.number_of_edges()} links: {n_cites} from Semantic Scholar reference "
        f"lists, {n_builds} curated *builds on* links and {n_cmp} *compared against* links (a baseline the paper "
        "re-ran in its reported tables, from the [results](results/index.md)). A link points from a paper to the "
        "work it cites, builds on or compares against. Colour: inference stage; size: PageRank within the catalog. Click a paper to open its page.",
        "",
    ]
    if len(view.cg.enriched) < g.number_of_nodes():
        lines += ['!!! note "Citation data coverage"',
                  f"    {len(view.cg.enriched)} of {g.number_of_nodes()} papers have Semantic Scholar reference data so "
                  "far; the others contribute only their curated *builds on* links until the weekly enrichment "
                  "run (`atlas enrich`) reaches them.", ""]
    # the drawing (its static SVG names every paper) goes in after search indexing and skips Markdown
    lines += [region("\n".join([
        f'<link rel="stylesheet" href="{h(page.href(STYLE))}">',
        f'<div class="atlas-graph-legend">{legend}</div>',
        '<div class="atlas-graph-controls" id="atlas-graph-controls" hidden>'
        f'<fieldset><legend>Stages</legend>{stage_boxes}</fieldset>'
        '<label>Facet <select name="facet"><option value="">any</option></select></label> '
        '<label>Find a paper <input type="search" name="q" list="atlas-graph-names" placeholder="name or id" '
        'autocomplete="off"></label><datalist id="atlas-graph-names"></datalist> '
        '<output name="count"></output></div>',
        f'<div class="atlas-graph" id="atlas-graph" data-src="{h(page.href(GRAPH_DATA))}">'
        f'<div class="atlas-graph-fallback">{overview_svg(ctx, view)}</div></div>',
        f'<script src="{h(page.href(CYTOSCAPE))}"></script>',
        f'<script src="{h(page.href(SCRIPT))}"></script>',
    ]), searchable=False),
        "## Most central papers", "",
        "| # | Paper | PageRank | Cited by (catalog) | Cites (catalog) |", "|---|---|---|---|---|",
    ]
    ranked = sorted(view.pagerank.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    for i, (n, score) in enumerate(ranked, 1):
        lines.append(f"| {i} | {page.paper_link(ctx.catalog.by_id[n])} | {score:.4f} | {g.in_degree(n)} | {g.out_degree(n)} |")
    chains = view.cg.lineage_chains()
    if chains:
        lines += ["", "## Lineage chains", "", "Chains of curated *builds on* links, newest first.", ""]
        for c in chains[:30]:
            lines.append("- " + " → ".join(page.paper_link(ctx.catalog.by_id[n]) for n in c))
    return "\n".join(lines) + "\n"


@register_shared_data
def prepare_graph(ctx) -> None:
    """The graph, PageRank and layout are read by paper pages and the graph page: compute them once."""
    GraphView.of(ctx)


@register_page_builder
def citation_graph_pages(ctx):
    view = GraphView.of(ctx)
    yield GRAPH_DATA, graph_json(ctx, view)
    yield GRAPH_PAGE, graph_page(ctx, view)


# ---------------- per-paper section ----------------

def ego_svg(ctx, view: GraphView, pid: str) -> str:
    """The paper in the middle, what it cites on the left, what cites it on the right."""
    g = view.cg.graph
    by_rank = lambda ids: sorted(ids, key=lambda n: (-view.pagerank.get(n, 0.0), n))[:EGO_LIMIT]  # noqa: E731
    left, right = by_rank(g.successors(pid)), by_rank(g.predecessors(pid))
    rows = max(len(left), len(right), 1)
    width, row_h, top = 720, 26, 30
    height = top * 2 + rows * row_h
    cx, cy = width / 2, height / 2
    pos = {pid: (cx, cy)}
    for side, ids, x in ((0, left, 130), (1, right, width - 130)):
        offset = (rows - len(ids)) * row_h / 2
        for i, n in enumerate(ids):
            pos[n] = (x, top + offset + i * row_h + row_h / 2)
    parts = [f'<svg class="atlas-ego-graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="Citation neighbourhood of {h(ctx.catalog.by_id[pid].name)}" font-family="sans-serif" font-size="12">',
             '<defs><marker id="atlas-ego-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>']
    for n in left:     # pid cites n: arrow from the centre to the left
        parts.append(_ego_line(pos[pid], pos[n], g.edges[pid, n]["sources"]))
    for n in right:    # n cites pid: arrow from the right to the centre
        parts.append(_ego_line(pos[n], pos[pid], g.edges[n, pid]["sources"]))
    for n, (x, y) in pos.items():
        p = ctx.catalog.by_id[n]
        color = STAGE_COLORS.get(g.nodes[n]["stage"], OTHER_COLOR)
        r = 9 if n == pid else 6
        anchor, dx = ("middle", 0) if n == pid else (("end", -10) if x < cx else ("start", 10))
        dy = -14 if n == pid else 4
        weight = ' font-weight="bold"' if n == pid else ""
        label = (f'<text x="{x + dx}" y="{y + dy}" text-anchor="{anchor}" fill="currentColor"{weight}>'
                 f'{h(p.name)}</text>')
        node = f'<circle cx="{x}" cy="{y}" r="{r}" fill="{color}"><title>{h(p.name)}: {h(p.title)}</title></circle>{label}'
        parts.append(node if n == pid else f'<a href="{h(ctx.href(urls.paper(n)))}">{node}</a>')
    parts.append("</svg>")
    return "".join(parts)


def _ego_line(a, b, sources) -> str:
    dash = ' stroke-dasharray="5 3"' if sources == {CITES} else ""
    # stop the arrow at the target circle's edge
    dx, dy = b[0] - a[0], b[1] - a[1]
    dist = math.hypot(dx, dy) or 1.0
    ex, ey = b[0] - dx / dist * 10, b[1] - dy / dist * 10
    return (f'<line x1="{a[0]}" y1="{a[1]}" x2="{round(ex, 1)}" y2="{round(ey, 1)}" stroke="#888"{dash} '
            'marker-end="url(#atlas-ego-arrow)"/>')


def _paper_links(ctx, ids) -> str:
    by = ctx.catalog.by_id
    return ", ".join(f'<a href="{h(ctx.href(urls.paper(n)))}">{h(by[n].name)}</a>' for n in ids)


@register_paper_section(slot="citations")
def citation_section(ctx, paper) -> str | None:
    """Finished HTML in a region kept out of Markdown and the search index (names of other papers add
    nothing to a search for this one, and thousands of paper pages build much faster)."""
    view = GraphView.of(ctx)
    cg = view.cg
    if paper.id not in cg.graph:
        return None
    cites, cited_by = cg.cites(paper.id), cg.cited_by(paper.id)
    out = ['<h2 id="citations-in-the-catalog">Citations in the catalog</h2>']
    if paper.id not in cg.enriched:
        out.append("<p><em>No Semantic Scholar reference data for this paper yet; links below come from curated "
                   "builds-on entries and from other papers' reference lists.</em></p>")
    if cites or cited_by:
        out += [f'<div class="atlas-ego">{ego_svg(ctx, view, paper.id)}</div>',
                "<p>Solid arrows: curated <em>builds on</em>; dashed: citation only.</p>"]
    out += [f"<p><strong>Cites in the catalog ({len(cites)}):</strong> {_paper_links(ctx, cites) or 'none so far'}</p>",
            f"<p><strong>Cited by in the catalog ({len(cited_by)}):</strong> {_paper_links(ctx, cited_by) or 'none so far'}</p>"]
    lineage = cg.lineage(paper.id)
    if len(lineage) > 1:
        out.append("<p><strong>Lineage:</strong> " + " → ".join(_paper_links(ctx, [n]) for n in lineage) + "</p>")
    related = cg.related(paper.id, 8)
    if related:
        items = []
        for n, cocited, shared in related:
            why = ", ".join(x for x in (f"co-cited {cocited}×" if cocited else "",
                                        f"{shared} shared references" if shared else "") if x)
            items.append(f"<li>{_paper_links(ctx, [n])} ({why})</li>")
        out.append("<p><strong>Related:</strong></p>\n<ul>\n" + "\n".join(items) + "\n</ul>")
    out.append(f'<p><a href="{h(ctx.href(GRAPH_PAGE))}">See it in the whole citation graph</a></p>')
    return region("\n".join(out), searchable=False)

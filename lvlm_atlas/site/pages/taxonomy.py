"""The two taxonomy views as tree pages (every paper listed under its node) and one page per
category with its method table."""
from __future__ import annotations

from lvlm_atlas.catalog.taxonomy import Node
from lvlm_atlas.site import urls
from lvlm_atlas.site.blocks import a, by_date, method_table, paper_a, region
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import esc, front_matter_title
from lvlm_atlas.site.registry import register_page_builder

VIEW_INTRO = {
    "stage": "Techniques placed by the stage of the inference lifecycle where they intervene, and by the "
             "mechanism they use. Counts include sub-categories.",
    "dimensions": "The same papers seen through the four optimisation dimensions of the second survey. "
                  "Papers reach this view through their stage-view placement (mapped per modality) or an "
                  "explicit placement.",
}


def _section_ref(node: Node) -> str:
    if not node.section:
        return ""
    survey = "ACL 2026 survey" if node.view == "stage" else "four-dimensions survey"
    return f" <small>({survey} §{esc(node.section)})</small>"


def tree(ctx: RenderContext, view: str) -> str:
    """The view as a nested HTML list: each node with its paper count and the papers placed on it."""
    tax = ctx.taxonomy
    out: list[str] = []

    def walk(node: Node) -> None:
        n = len(ctx.indexes.subtree(node.id))
        out.append(f'<li>{a(ctx.href(urls.category(node.id)), f"<strong>{esc(node.label)}</strong>")} ({n}){_section_ref(node)}')
        direct = by_date(ctx.indexes.direct.get(node.id, []))
        if direct:
            out.append('<p class="atlas-tree-papers">' + ", ".join(paper_a(ctx, p) for p in direct) + "</p>")
        children = tax.children(node.id, view)
        if children:
            out.append("<ul>")
            for child in children:
                walk(child)
            out.append("</ul>")
        out.append("</li>")

    out.append('<ul class="atlas-tree">')
    for root in tax.roots(view):
        walk(root)
    out.append("</ul>")
    return region("\n".join(out))


def view_page(ctx: RenderContext, view_id: str) -> str:
    ctx = ctx.at(urls.taxonomy_view(view_id))
    view = next(v for v in ctx.taxonomy.views if v.id == view_id)
    other = next(v for v in ctx.taxonomy.views if v.id != view_id)
    return "\n".join([
        "---", front_matter_title(view.label), "search:", "  exclude: true", "---", "",
        f"# {esc(view.label)}", "",
        esc(view.description), "",
        f"{esc(VIEW_INTRO.get(view_id, ''))} The other view: [{esc(other.label)}]({ctx.link(urls.taxonomy_view(other.id))}).", "",
        tree(ctx, view_id),
    ])


def category_page(ctx: RenderContext, node: Node) -> str:
    ctx = ctx.at(urls.category(node.id))
    tax = ctx.taxonomy
    crumbs = [f"[{esc(a.label)}]({ctx.category_url(a.id)})" for a in tax.ancestors(node.id)]
    view = next(v for v in tax.views if v.id == node.view)
    papers = by_date(ctx.indexes.direct.get(node.id, []))
    total = len(ctx.indexes.subtree(node.id))
    lines = ["---", front_matter_title(node.label), "---", "",
             f"# {esc(node.label)}", "",
             f"<small>[{esc(view.label)}]({ctx.link(urls.taxonomy_view(node.view))})"
             + "".join(f" › {c}" for c in crumbs) + (f" · §{esc(node.section)}" if node.section else "") + "</small>", "",
             esc(node.description), ""]
    if node.stage:
        stage = next(s for s in tax.stages if s.id == node.stage)
        lines += [f'!!! info "{esc(stage.label)} stage"', f"    {esc(stage.description)}", ""]
    children = tax.children(node.id, node.view)
    if children:
        lines += ["## Sub-categories", ""]
        lines += [f"- [{esc(c.label)}]({ctx.category_url(c.id)}) ({len(ctx.indexes.subtree(c.id))}): {esc(c.description)}"
                  for c in children]
        lines.append("")
    # Each paper gets one table row per node it is placed on (not on every ancestor): parents list
    # their sub-categories, which keeps the site linear in the number of papers. The table section is
    # kept out of the search index (each paper's own page is in it).
    where = "placed in this category" if children else "in this category"
    lines += [f"## Papers {where} ({len(papers)}) {{ data-search-exclude }}", ""]
    if children:
        lines += [f"{total} papers in this category and its sub-categories; the table lists those placed "
                  f"directly here.", ""]
    lines += [method_table(ctx, papers, empty="All papers are in the sub-categories." if children
                            else "No papers in this category yet.")]
    return "\n".join(lines)


def categories_index(ctx: RenderContext) -> str:
    ctx = ctx.at("categories/index.md")
    tax = ctx.taxonomy
    lines = ["---", front_matter_title("Categories"), "search:", "  exclude: true", "---", "", "# Categories", "",
             "Every category of both taxonomy views, with the number of papers in it (sub-categories included). "
             "Each category page has a method table.", ""]
    for view in tax.views:
        lines += [f"## {esc(view.label)}", ""]
        for n in [n for n in tax.nodes if n.view == view.id]:
            depth = len([a for a in tax.ancestors(n.id)])
            lines.append("    " * depth + f"- [{esc(n.label)}]({ctx.category_url(n.id)}) ({len(ctx.indexes.subtree(n.id))})")
        lines.append("")
    return "\n".join(lines)


@register_page_builder
def taxonomy_pages(ctx: RenderContext):
    for view in ctx.taxonomy.views:
        yield urls.taxonomy_view(view.id), view_page(ctx, view.id)
    yield "categories/index.md", categories_index(ctx)
    for node in ctx.taxonomy.nodes:
        yield urls.category(node.id), category_page(ctx, node)

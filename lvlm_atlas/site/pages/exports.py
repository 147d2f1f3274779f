"""The Exports page and its downloadable files, produced by `lvlm_atlas.catalog.exports.render_exports`."""
from __future__ import annotations

from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import front_matter_title
from lvlm_atlas.site.registry import register_page_builder

FILES = {  # export format -> (file name, what it is)
    "json": ("lvlm-atlas.json", "JSON: every field of every paper, as in the YAML files"),
    "yaml": ("lvlm-atlas.yaml", "YAML: one document with every paper"),
    "csv": ("lvlm-atlas.csv", "CSV: one row per paper, for spreadsheets"),
    "bibtex": ("lvlm-atlas.bib", "BibTeX: one entry per paper, with full author lists"),
    "csljson": ("lvlm-atlas.csl.json", "CSL-JSON: for Zotero, Pandoc and other citation managers"),
}


def download_path(fmt: str) -> str:
    return f"downloads/{FILES[fmt][0]}" if fmt in FILES else f"downloads/lvlm-atlas.{fmt}"


def exports_page(ctx: RenderContext, formats: list[str]) -> str:
    ctx = ctx.at("exports.md")
    lines = ["---", front_matter_title("Exports"), "---", "", "# Exports", "",
             f"The whole catalog ({len(ctx.papers)} papers), regenerated with every build of this site. "
             "The same files come from `atlas export FORMAT` in a checkout.", "",
             "| Format | Download | Contents |", "|---|---|---|"]
    for fmt in formats:
        name, what = FILES.get(fmt, (download_path(fmt).split("/")[-1], fmt))
        lines.append(f"| {fmt} | [{name}]({ctx.link(download_path(fmt))}) | {what} |")
    n_rows = sum(len(tb.rows) for f in ctx.catalog.results for tb in f.tables)
    lines += ["", "## Reported results", "",
              f"The numbers papers report ({len(ctx.catalog.results)} papers, {n_rows} rows), one row per method, "
              "setting and table, with the paper version and table they come from (see [Results](results/index.md)):", "",
              "| Format | Download |", "|---|---|",
              f"| JSON | [results.json]({ctx.link('assets/data/results.json')}) |",
              f"| CSV | [results.csv]({ctx.link('assets/data/results.csv')}) |"]
    lines += ["", "Licence: the catalog data is MIT-licensed, like the code.", ""]
    return "\n".join(lines)


@register_page_builder
def export_pages(ctx: RenderContext):
    from lvlm_atlas.catalog.exports import FORMATS, render_exports

    formats = list(FORMATS)
    yield "exports.md", exports_page(ctx, formats)
    for fmt, text in render_exports(ctx.catalog, formats).items():
        yield download_path(fmt), text

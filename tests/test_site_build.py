"""The generated website: every paper has a page, every category its table, facets, explorer data,
feed, exports, method cards, determinism, and the extension registry."""
from __future__ import annotations

import filecmp
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lvlm_atlas.catalog.exports import FORMATS, bibtex_entry, render_export
from lvlm_atlas.site import build_site, registry, urls
from lvlm_atlas.site.build import BuildError
from lvlm_atlas.site.cards import SiteDataError
from tests.site_helpers import built_site, catalog_entries, generate, write_tree

ATOM = "{http://www.w3.org/2005/Atom}"


class _Tables(HTMLParser):
    """Collects the rows of every <table> in <article> as lists of cell texts, plus link targets."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> _Tables:
    p = _Tables()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def html_of(site: Path, md_path: str) -> Path:
    url = urls.page_url(md_path).partition("#")[0]
    return site / url / "index.html" if url.endswith("/") or url == "" else site / url


@pytest.fixture(scope="module")
def tree():
    return built_site()


def test_every_paper_has_a_page_with_its_metadata(tree):
    for p in tree.catalog.papers:
        page = html_of(tree.site, urls.paper(p.id))
        assert page.is_file(), f"no page for {p.id}"
        text = page.read_text(encoding="utf-8")
        assert f'id="bibtex-{p.id}"' in text
        for code in p.links.code:
            assert "https://github.com/example/" in text
    fast = html_of(tree.site, urls.paper("fastprune")).read_text(encoding="utf-8")
    assert "Ada Lovelace, Alan Turing" in fast
    assert "../../facets/bottleneck/#compute" in fast            # tags link to facet sections
    assert "../../categories/prefilling/token-compression/attention-guided/" in fast


def test_every_category_page_has_its_method_table(tree):
    tax = tree.catalog.taxonomy
    from lvlm_atlas.site.context import Indexes

    idx = Indexes(tree.catalog, {}, [])
    placed = 0
    for node in tax.nodes:
        page = html_of(tree.site, urls.category(node.id))
        assert page.is_file(), node.id
        papers = idx.direct.get(node.id, [])     # each paper is a row where it is placed, not on ancestors
        parsed = parse(page)
        if not papers:
            empty = ("All papers are in the sub-categories" if tax.children(node.id, node.view)
                     else "No papers in this category yet")
            assert empty in page.read_text(encoding="utf-8"), node.id
            continue
        placed += 1
        method_tables = [t for t in parsed.tables if t and t[0][:3] == ["Method", "Year", "Venue"]]
        assert len(method_tables) == 1, node.id
        rows = method_tables[0][1:]
        assert len(rows) == len(papers), node.id
        assert rows[0][0] and all(len(r) == 8 for r in rows)
        assert all(r[1] == str(next(p.year for p in papers if r[0].startswith(p.name))) for r in rows)
        assert sorted(r[0].removesuffix(" runnable").removesuffix(" candidate") for r in rows) == sorted(p.name for p in papers)
    assert placed >= 6
    # every paper is in the table of its primary category
    for p in tree.catalog.papers:
        rows = [r for t in parse(html_of(tree.site, urls.category(p.primary_node))).tables for r in t[1:]]
        assert any(r[0].removesuffix(" runnable") == p.name for r in rows), p.id


def test_runnable_badge_links_the_method_card_and_results_fill_the_slots(tree):
    cat_page = html_of(tree.site, urls.category("prefilling/token-compression/attention-guided"))
    rows = {r[0]: r for t in parse(cat_page).tables for r in t[1:]}
    assert any(name.startswith("Fastprune") and "runnable" in name for name in rows)
    paper = html_of(tree.site, urls.paper("fastprune")).read_text(encoding="utf-8")
    assert "../../methods/fastprune/" in paper
    assert "atlas run fastprune --model tiny-llava" in paper
    assert 'data-slot="run"' not in paper and 'data-slot="results"' not in paper
    assert 'data-slot="citations"' not in paper                  # filled by the citation-graph section
    assert "Only a CPU smoke test on random weights so far" in paper   # CPU runs are not presented as results
    card = html_of(tree.site, urls.method("fastprune")).read_text(encoding="utf-8")
    assert "12.5" in card and "CPU smoke test" in card              # measured TTFT, on the card, labelled
    other = html_of(tree.site, urls.paper("kvsqueeze")).read_text(encoding="utf-8")
    for slot in registry.SLOTS:
        if slot == "citations":  # the citation-graph section fills this slot on every paper page
            assert f'data-slot="{slot}"' not in other
        else:
            assert f'data-slot="{slot}"' in other
    card = html_of(tree.site, urls.method("fastprune")).read_text(encoding="utf-8")
    for expected in ("LLaVA-1.5-7B", "60.1", "576", "tiny-llava", "abc123", "How to run"):
        assert expected in card


def test_builds_on_links_both_ways(tree):
    merge = html_of(tree.site, urls.paper("mergeall")).read_text(encoding="utf-8")
    fast = html_of(tree.site, urls.paper("fastprune")).read_text(encoding="utf-8")
    assert "Builds on:" in merge and 'href="../../papers/fastprune/"' in merge
    assert "Extended by:" in fast and 'href="../../papers/mergeall/"' in fast


def _section_links(page: Path, slug: str) -> list[str]:
    """Paper links in the section of a facet page whose heading id is `slug`."""
    text = page.read_text(encoding="utf-8")
    start = text.index(f'id="{slug}"')
    end = text.find("<h2", start)
    return re.findall(r'href="\.\./\.\./papers/([^/"]+)/"', text[start:end if end > 0 else None])


def test_facet_pages_cover_every_paper(tree):
    for facet in ("bottleneck", "granularity", "modality", "year", "venue", "training-free", "has-code", "runnable"):
        assert html_of(tree.site, urls.facet_index(facet)).is_file(), facet
    assert _section_links(html_of(tree.site, urls.facet_index("runnable")), "yes") == ["fastprune"]
    years = {p.year for p in tree.catalog.papers}
    page = html_of(tree.site, urls.facet_index("year"))
    listed = [pid for y in years for pid in _section_links(page, str(y))]
    assert sorted(listed) == sorted(p.id for p in tree.catalog.papers)
    assert _section_links(html_of(tree.site, urls.facet_index("has-code")), "no") == ["mergeall"]
    bottleneck = html_of(tree.site, urls.facet_index("bottleneck")).read_text(encoding="utf-8")
    assert 'href="../../explorer/?bottleneck=compute"' in bottleneck


def test_explorer_data_lists_every_paper_with_working_urls(tree):
    data = json.loads((tree.site / "assets/data/papers.json").read_text(encoding="utf-8"))
    assert data["count"] == len(tree.catalog.papers) == len(data["papers"])
    for rec in data["papers"]:
        assert (tree.site / rec["url"] / "index.html").is_file()
        assert rec["code"] is None or rec["code"].startswith("https://")
    page = html_of(tree.site, "explorer.md").read_text(encoding="utf-8")
    assert 'data-src="../assets/data/papers.json"' in page and 'data-root="../"' in page
    assert "assets/javascripts/explorer.js" in page


def test_atom_feed_is_valid_and_lists_recent_additions(tree):
    root = ET.parse(tree.site / "feed.xml").getroot()
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{required}") is not None
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == len(tree.catalog.papers)
    assert entries[0].find(f"{ATOM}title").text.startswith("<img src=x")   # newest first, text preserved
    assert root.find(f"{ATOM}updated").text == "2026-11-20T00:00:00Z"
    for e in entries:
        for required in ("id", "title", "updated", "link", "author", "summary"):
            assert e.find(f"{ATOM}{required}") is not None
        href = e.find(f"{ATOM}link").get("href")
        assert href.startswith("papers/") and (tree.site / href / "index.html").is_file()
    raw = (tree.site / "feed.xml").read_text(encoding="utf-8")
    assert "<script>" not in raw and "&lt;script&gt;" in raw


def test_every_page_head_links_the_atom_feed(tree):
    """Feed autodiscovery: each page's head points at the one feed, through a link that works from
    where the page is (relative), so readers find it on a sub-path deployment too."""
    feed = tree.site / "feed.xml"
    assert feed.is_file()
    pages = [p for p in tree.site.rglob("index.html")]
    assert len(pages) > len(tree.catalog.papers)
    for page in pages:
        head = page.read_text(encoding="utf-8").split("</head>", 1)[0]
        links = re.findall(r'<link rel="alternate" type="application/atom\+xml" title="[^"]*" href="([^"]+)">', head)
        assert len(links) == 1, (page, links)
        assert not links[0].startswith(("/", "http")), (page, links)
        assert (page.parent / links[0]).resolve() == feed.resolve(), (page, links)


def test_exports_are_the_exporters_output(tree):
    from lvlm_atlas.site.pages.exports import download_path

    for fmt in FORMATS:
        assert (tree.site / download_path(fmt)).read_text(encoding="utf-8") == render_export(tree.catalog, fmt)
    page = html_of(tree.site, "exports.md").read_text(encoding="utf-8")
    assert page.count("../downloads/lvlm-atlas.") == len(FORMATS)


def test_bibtex_block_holds_the_exporters_entry(tree):
    import html as htmlmod

    for p in tree.catalog.papers:
        text = html_of(tree.site, urls.paper(p.id)).read_text(encoding="utf-8")
        m = re.search(rf'<pre class="atlas-bibtex" id="bibtex-{p.id}"><code>(.*?)</code></pre>', text, re.S)
        assert m, p.id
        assert htmlmod.unescape(m.group(1)) == bibtex_entry(p).strip("\n")


def test_contributing_has_schema_reference_generated_from_models(tree):
    from lvlm_atlas.catalog.models import Paper

    page = html_of(tree.site, "contributing.md").read_text(encoding="utf-8")
    assert "Add a paper" in page
    for field in Paper.model_fields:
        assert f"<code>{field}</code>" in page or f"<code>{field.replace('_', '&#95;')}</code>" in page, field
    assert "memory-bandwidth" in page


def test_home_page_counts_pipeline_and_latest(tree):
    page = html_of(tree.site, "index.md").read_text(encoding="utf-8")
    assert "<svg" in page and "Prefilling" in page and "Decoding" in page
    assert f"<strong>{len(tree.catalog.papers)}</strong>" in page
    svg = (tree.site / "assets/charts/papers-per-year.svg").read_text(encoding="utf-8")
    ET.fromstring(svg)  # well-formed
    assert svg.count("<rect") == max(p.year for p in tree.catalog.papers) - min(p.year for p in tree.catalog.papers) + 1


def test_paper_pages_are_kept_out_of_the_navigation(tree):
    home = html_of(tree.site, "index.md").read_text(encoding="utf-8")
    explorer = html_of(tree.site, "explorer.md").read_text(encoding="utf-8")
    for p in tree.catalog.papers:
        assert f"papers/{p.id}/" not in explorer.split('id="atlas-explorer"')[0]
    assert "md-nav" in explorer and "papers/fastprune/" not in home.split("<article")[0]


def test_generation_is_deterministic(tmp_path):
    tree = built_site()
    again = generate(tmp_path, tree.catalog, tmp_path / "docs", data_root=tree.root)
    cmp = filecmp.dircmp(tree.docs, again)

    def diffs(c):
        out = list(c.diff_files) + list(c.left_only) + list(c.right_only)
        for sub in c.subdirs.values():
            out += diffs(sub)
        return out

    assert diffs(cmp) == []
    # and it is byte-identical, not only equal in size/mtime
    for f in tree.docs.rglob("*"):
        if f.is_file():
            assert f.read_bytes() == (again / f.relative_to(tree.docs)).read_bytes(), f


def test_build_works_without_cards_or_results(tmp_path):
    entries = [e for e in catalog_entries() if e["id"] != "fastprune"]
    entries = [{k: v for k, v in e.items() if k != "builds_on"} for e in entries]
    catalog = write_tree(tmp_path, entries, with_card=False)
    docs = generate(tmp_path, catalog)
    assert "No method cards yet" in (docs / "methods/index.md").read_text(encoding="utf-8")
    assert not list((docs / "methods").glob("*.md"))[1:]


def test_registered_sections_and_pages_plug_in(tmp_path):
    tree = built_site()

    def cites(ctx, paper):
        return f"## Cites in the catalog\n\n{ctx.paper_link(tree.catalog.by_id['fastprune'])} (graph)\n"

    def graph_page(ctx):
        ctx = ctx.at("graph/index.md")
        yield "graph/index.md", f"# Graph\n\n[first]({ctx.paper_url('fastprune')})\n"

    registry.register_paper_section(cites, slot="citations")
    registry.register_page_builder(graph_page)
    try:
        docs = generate(tmp_path, tree.catalog, tmp_path / "docs", data_root=tree.root)
    finally:
        registry.PAPER_SECTIONS.remove(cites)
        registry.PAGE_BUILDERS.remove(graph_page)
    paper = (docs / "papers/kvsqueeze.md").read_text(encoding="utf-8")
    assert "## Cites in the catalog" in paper and "[Fastprune](fastprune.md) (graph)" in paper
    assert 'data-slot="citations"' not in paper
    assert (docs / "graph/index.md").read_text(encoding="utf-8") == "# Graph\n\n[first](../papers/fastprune.md)\n"
    with pytest.raises(ValueError, match="unknown paper-section slot"):
        registry.register_paper_section(cites, slot="nope")


@pytest.mark.parametrize("bad", ["../escape.md", "/abs.md", "c:/x.md"])
def test_page_builders_cannot_write_outside_the_docs_folder(tmp_path, bad):
    tree = built_site()

    def evil(ctx):
        yield bad, "x"

    registry.register_page_builder(evil)
    try:
        with pytest.raises(BuildError, match="unsafe path"):
            generate(tmp_path, tree.catalog, tmp_path / "docs", data_root=tree.root)
    finally:
        registry.PAGE_BUILDERS.remove(evil)
    assert not (tmp_path / "docs").exists()          # nothing half-written
    assert not (tmp_path / "escape.md").exists()


def test_two_builders_writing_one_file_is_an_error(tmp_path):
    tree = built_site()

    def clash(ctx):
        yield "index.md", "# again"

    registry.register_page_builder(clash)
    try:
        with pytest.raises(BuildError, match="written by both"):
            generate(tmp_path, tree.catalog, tmp_path / "docs", data_root=tree.root)
    finally:
        registry.PAGE_BUILDERS.remove(clash)


def test_failed_build_keeps_the_previous_output(tmp_path):
    tree = built_site()
    docs = generate(tmp_path, tree.catalog, tmp_path / "docs", data_root=tree.root)
    before = (docs / "index.md").read_text(encoding="utf-8")
    cards = tmp_path / "badcards"
    cards.mkdir()
    (cards / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(SiteDataError, match="broken.yaml"):
        build_site(tree.catalog, docs, cards_dir=cards, bench_dir=tmp_path / "none")
    assert (docs / "index.md").read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".docs")) == []


def test_every_internal_link_of_the_built_site_resolves(tree):
    """Generated HTML bypasses MkDocs' link checks, so check every relative href/src here."""
    from urllib.parse import unquote, urlsplit

    checked = 0
    for page in tree.site.rglob("*.html"):
        if page.name == "404.html":      # MkDocs writes it with root-absolute URLs (site_url based)
            continue
        for target in re.findall(r'(?:href|src)="([^"]+)"', page.read_text(encoding="utf-8")):
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith("#"):
                continue
            assert not target.startswith("/"), f"{page.relative_to(tree.site)}: absolute link {target} breaks sub-paths"
            path = (page.parent / unquote(parts.path)).resolve()
            if path.is_dir():
                path = path / "index.html"
            assert path.is_file(), f"{page.relative_to(tree.site)} links to missing {target}"
            if parts.fragment and path.suffix == ".html" and path.parent.parent.name == "facets":
                assert f'id="{parts.fragment}"' in path.read_text(encoding="utf-8"), target
            checked += 1
    assert checked > 1000


def test_search_index_holds_text_not_link_lists(tree):
    index = json.loads((tree.site / "search/search_index.json").read_text(encoding="utf-8"))
    docs = [d for d in index["docs"] if d["location"].startswith("papers/mergeall/")]
    text = " ".join(d["text"] + " " + d["title"] for d in docs)
    assert "Ada Lovelace" in text and "Keeps the visual tokens" in text                   # authors, summary
    assert "A study of mergeall for efficient vision-language inference" in text          # the paper's title
    title_doc = next(d for d in docs if d["title"] == "A study of mergeall for efficient vision-language inference")
    assert title_doc["location"].startswith("papers/mergeall/")   # a title search lands on the paper's page
    assert "Second paragraph." not in text  # abstracts are shown on the page, not indexed (index 3.9 -> 1.4 MB at 2,000 papers)
    assert "<p>Second paragraph.</p>" in html_of(tree.site, urls.paper("mergeall")).read_text(encoding="utf-8")
    assert "@inproceedings" not in text and "@misc" not in text            # BibTeX is added after indexing
    assert not any(d["location"].startswith(("facets/", "taxonomy/")) for d in index["docs"])


def test_hook_output_equals_plain_markdown_output():
    """The MkDocs hook only moves finished HTML around Markdown: the page is the same without it."""
    import markdown

    from lvlm_atlas.site import mkdocs_hooks as hooks
    from lvlm_atlas.site.blocks import region

    src = ("# Title\n" + region("<p>kept <em>as is</em></p>\n<ul>\n<li>a</li>\n</ul>")
           + region("<p>late, next to it</p>", searchable=False)
           + region("<p>searchable</p>\n" + region("<p>late <b>inside</b> searchable</p>", searchable=False) + "<p>tail</p>")
           + "\n## Section\n\nSome *markdown* text.\n" + region('<table>\n<tr><td>x</td></tr>\n</table>', searchable=False))
    ext = ["tables", "attr_list", "md_in_html", "admonition", "toc"]
    plain = markdown.markdown(src, extensions=ext)
    text, content, late = hooks.lift_fragments(src)
    hooked = hooks.join_fragments(hooks.join_fragments(markdown.markdown(text, extensions=ext), content), late,
                                  hooks.LATE_SLOT)

    def norm(h):
        h = re.sub(r"<!-- atlas:[a-z:-]+ -->", "", h)
        return re.sub(r"\s+", " ", h).strip()

    assert norm(hooked) == norm(plain)
    assert "<em>as is</em>" in hooked and "<em>markdown</em>" in hooked
    # adjacent fragments reach Markdown as one slot; the late ones stay out of the searchable content
    assert text.count("atlas:slot:") == 2 and text.count("atlas:late-slot:") == 0  # before and after the section
    assert "late, next to it" not in " ".join(content) and "late <b>inside</b>" in " ".join(late)
    assert hooked.index("kept") < hooked.index("late, next to it") < hooked.index("searchable") \
        < hooked.index("late <b>inside</b>") < hooked.index("tail") < hooked.index("Section")


def test_paper_pages_skip_markdown_with_the_same_result(tree):
    """Paper pages are all HTML: the hook renders them without Python-Markdown, and what it sets equals
    what MkDocs' own Page.render produces for the same page."""
    from mkdocs.config import load_config
    from mkdocs.structure.files import get_files
    from mkdocs.structure.pages import Page

    from lvlm_atlas.site import mkdocs_hooks as hooks

    cfg = load_config(str(tree.root / "mkdocs.yml"))
    files = get_files(cfg)
    papers = [f for f in files.documentation_pages() if f.src_uri.startswith("papers/") and f.name != "index"]
    assert len(papers) == len(tree.catalog.papers)
    skipped = 0
    for f in papers:
        fast, slow = Page(None, f, cfg), Page(None, f, cfg)
        for page in (fast, slow):
            page.read_source(cfg)
            page.markdown = hooks.on_page_markdown(page.markdown, page, cfg, files)
        with_card = tree.catalog.by_id[f.name].method is not None  # "Run this method" is Markdown
        assert ("render" in vars(fast)) is not with_card, f.src_uri
        skipped += "render" in vars(fast)
        fast.render(cfg, files)
        Page.render(slow, cfg, files)
        assert (fast.content, str(fast.toc), fast.title, fast.present_anchor_ids, fast.links_to_anchors) == \
               (slow.content, str(slow.toc), slow.title, slow.present_anchor_ids, slow.links_to_anchors or {})
        hooks._content.pop(f.src_uri, None)
        hooks._late.pop(f.src_uri, None)
    assert skipped >= len(papers) - 2
    page = html_of(tree.site, urls.paper("fastprune")).read_text(encoding="utf-8")
    assert re.search(r'<h1 id="[a-z0-9-]+">[^<]+</h1>', page)


def test_html_heading_equals_markdown_heading():
    import markdown

    from lvlm_atlas.site.escape import esc, heading

    md = markdown.Markdown(extensions=["tables", "attr_list", "md_in_html", "admonition", "toc"])
    for title in ["FastV: an image is worth 1/2 tokens", "<script>x</script> & {{ y }} *a* _b_ `c` [l](javascript:x) #",
                  "Ünïcödé 中文 — title", "x {: .cls }", "'", "[", ":", "A  B", "  padded  "]:
        md.reset()
        assert heading(title) == md.convert("# " + esc(title)), title


def test_generation_keeps_long_lived_objects_out_of_gc_passes_and_restores_the_collector():
    import gc

    from lvlm_atlas.site.build import long_lived_objects_frozen

    assert gc.get_freeze_count() == 0
    keep = [object() for _ in range(10)]
    with long_lived_objects_frozen():
        assert gc.get_freeze_count() >= len(keep)
    assert gc.get_freeze_count() == 0
    gc.freeze()  # someone else's freeze is left alone
    try:
        assert gc.get_freeze_count() > 0
        with long_lived_objects_frozen():
            pass
        # still frozen (the exact count may drop as frozen objects are freed meanwhile)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    with pytest.raises(RuntimeError):  # restored on errors too
        with long_lived_objects_frozen():
            raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="needs fork")
def test_parallel_page_builders_write_the_same_files(tmp_path):
    """Large catalogs are rendered by two forked workers; the docs folder and the report's file list
    are the same as an in-process build (synthetic catalog, hostile test entries included)."""
    from lvlm_atlas.site.build import PARALLEL_FROM, default_workers
    from lvlm_atlas.site.synthetic import write_synthetic_catalog
    from lvlm_atlas.catalog.taxonomy import load_taxonomy

    write_synthetic_catalog(tmp_path / "catalog" / "papers", 150, load_taxonomy(), seed=7)
    catalog = write_tree(tmp_path, catalog_entries())  # adds the test entries, card and results; validates all
    kw = dict(cards_dir=tmp_path / "methods" / "cards", bench_dir=tmp_path / "catalog" / "benchmarks")
    serial = build_site(catalog, tmp_path / "serial", workers=1, **kw)
    parallel = build_site(catalog, tmp_path / "parallel", workers=2, **kw)
    assert (serial.files, serial.pages) == (parallel.files, parallel.pages)
    assert list(serial.seconds) == list(parallel.seconds)  # every builder ran, reported in one order
    a, b = _tree_bytes(tmp_path / "serial"), _tree_bytes(tmp_path / "parallel")
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
    assert len(a) > 150
    assert default_workers(10) == 1 and default_workers(PARALLEL_FROM) in (1, 2)


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="needs fork")
def test_parallel_build_reports_builder_errors_and_writes_nothing(tmp_path):
    tree = built_site()

    def evil(ctx):
        yield "../escape.md", "x"

    def clash(ctx):
        yield "index.md", "# again"

    for bad, message in ((evil, "unsafe path"), (clash, "written by both")):
        registry.register_page_builder(bad)
        try:
            with pytest.raises(BuildError, match=message):
                build_site(tree.catalog, tmp_path / "docs", cards_dir=tree.root / "methods" / "cards",
                           bench_dir=tree.root / "catalog" / "benchmarks", workers=2)
        finally:
            registry.PAGE_BUILDERS.remove(bad)
        assert not (tmp_path / "docs").exists() and not (tmp_path / "escape.md").exists()
        assert [p.name for p in tmp_path.iterdir()] == []


def test_page_title_does_not_repeat_a_name_the_title_starts_with():
    from lvlm_atlas.site.pages.papers import page_title

    class P:
        name, title = "FLoC", "FLoC: Facility Location-Based Efficient Visual Token Compression"
    assert page_title(P) == P.title
    P.name, P.title = "FastV", "An Image is Worth 1/2 Tokens After Layer 2"
    assert page_title(P) == "FastV: An Image is Worth 1/2 Tokens After Layer 2"

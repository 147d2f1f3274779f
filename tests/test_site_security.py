"""Catalog text is rendered inert: hostile titles, names, authors, summaries, abstracts, venues, URLs
and method cards produce escaped text and no active element in any built page."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from lvlm_atlas.catalog.models import Links
from lvlm_atlas.site import urls
from lvlm_atlas.site.escape import esc, esc_block, safe_href
from tests.site_helpers import XSS_IMG, XSS_MD_LINK, XSS_SCRIPT, built_site

ACTIVE_TAGS = {"iframe", "object", "embed", "frame", "frameset", "applet", "base", "meta"}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcset"}


class _Audit(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text: list[str] = []
        self.in_script = False
        self.h1 = 0
        self.in_article = False
        self.article_tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.in_article = True
        if self.in_article:
            self.article_tags.append(tag)
        if tag == "h1":
            self.h1 += 1
        if tag in ACTIVE_TAGS and not (tag == "meta" and not self.in_article):
            self.problems.append(f"active element <{tag}>")
        if tag == "form" and self.in_article and dict(attrs).get("class") != "atlas-filters":
            self.problems.append("unexpected <form> in content")
        if tag == "img" and dict(attrs).get("src", "").strip() in ("x", ""):
            self.problems.append("injected <img>")
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"event handler {name}= on <{tag}>")
            if name.lower() in URL_ATTRS and value:
                v = "".join(value.split()).lower()
                if v.startswith(("javascript:", "data:", "vbscript:")):
                    self.problems.append(f"{name}={value!r} on <{tag}>")
        if tag == "script":
            self.in_script = True
            src = dict(attrs).get("src")
            if src and (src.startswith(("http:", "https:", "//"))):
                self.problems.append(f"external script {src}")
        if tag == "style" and self.in_article:
            self.problems.append("<style> in content")

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False
        if tag == "article":
            self.in_article = False

    def handle_data(self, data):
        if self.in_script and ("alert" in data or "xss" in data):
            self.problems.append("injected script text")
        elif not self.in_script:
            self.text.append(data)


def audit(path: Path) -> _Audit:
    a = _Audit()
    a.feed(path.read_text(encoding="utf-8"))
    return a


@pytest.fixture(scope="module")
def tree():
    return built_site()


def test_no_built_page_contains_an_active_element_from_data(tree):
    pages = sorted(tree.site.rglob("*.html"))
    assert len(pages) > 50
    for page in pages:
        raw = page.read_text(encoding="utf-8")
        for needle in ("<script>alert", "<img src=x", "<svg onload", "<iframe", "<b onmouseover", "<style>body",
                       "{: onclick"):
            assert needle not in raw, f"{needle!r} unescaped in {page.relative_to(tree.site)}"
        a = audit(page)
        assert a.problems == [], f"{page.relative_to(tree.site)}: {a.problems}"


def test_hostile_paper_page_shows_the_text_literally(tree):
    page = tree.site / "papers/hostile-entry/index.html"
    a = audit(page)
    text = "".join(a.text)
    for literal in (XSS_SCRIPT, XSS_IMG, XSS_MD_LINK, "{{ 7*7 }}", "{% if true %}tpl{% endif %}",
                    "<iframe src=javascript:alert('xss-iframe')></iframe>", "{: onclick=\"alert('xss-attr')\" }",
                    "![x](data:text/html;base64,", "`code` **bold** _it_ <!-- comment -->", "VQA|v2",
                    "<b onmouseover=alert('xss-b')>Mallory</b>", "<svg onload=alert('xss-venue')> 2025"):
        assert literal in text, literal
    assert a.h1 == 1                               # "# heading" and "# not a heading" stay text
    assert "ol" not in a.article_tags              # "1. ..." in the abstract is not a list
    assert a.article_tags.count("table") == 1      # "|" in a comment does not make a table
    raw = page.read_text(encoding="utf-8")
    assert "%22%3E%3Cscript%3E" in raw            # quote-breaking URL stays inside its attribute
    assert "<title>&#60;img src=x onerror" in raw  # page title is escaped HTML as well


def test_hostile_entry_is_inert_on_listing_pages(tree):
    for md in (urls.category("decoding/kv-cache-compression/token-level"), "index.md", "recent.md",
               "taxonomy/stage.md", urls.facet_index("modality"), urls.method("fastprune")):
        url = urls.page_url(md)
        page = tree.site / url / "index.html" if url.endswith("/") or url == "" else tree.site / url
        a = audit(page)
        assert a.problems == []
        if md != urls.method("fastprune"):
            assert "<img src=x onerror=alert('xss-name')>" in "".join(a.text), md
    card_text = "".join(audit(tree.site / "methods/fastprune/index.html").text)
    assert "FastPrune <script>alert('xss-card')</script>" in card_text
    assert "drop tokens {{ 1+1 }}" in card_text


def test_explorer_script_never_writes_markup():
    js = (Path(__file__).resolve().parent.parent / "docs/assets/javascripts/explorer.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "textContent" in js and "isHttp(p.code)" in js


@pytest.mark.parametrize("text", [XSS_SCRIPT, XSS_IMG, XSS_MD_LINK, "{{ x }}", "{% x %}", "[a]: http://x", "`x`",
                                  "*a* _b_", "a | b", "<!-- c -->", "&amp;", "# h", "- l", "1. l", "> q", "!!! note"])
def test_esc_leaves_no_markdown_or_html_syntax(text):
    out = esc(text)
    assert not set(out) & set("<>\"'`*_{}[]|\\"), out
    assert not out.startswith(("#", "-", "1.", ">", "!")), out
    import html

    assert html.unescape(out) == text


def test_esc_block_keeps_lines_and_is_inert():
    assert esc_block("a <b>\n  {c}") == "a &#60;b&#62;\n  &#123;c&#125;"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)",
                                 "data:text/html,<script>", "vbscript:x", "//evil.example/x", "/relative",
                                 "http://", "https://exa mple.org", "java\nscript:alert(1)", None])
def test_safe_href_rejects_everything_but_http_urls(url):
    assert safe_href(url) is None


def test_safe_href_quotes_attribute_breakers():
    out = safe_href('https://example.org/a"b<c>{d}|e`f')
    assert out == "https://example.org/a&quot;b&lt;c&gt;%7Bd%7D%7Ce%60f"


def test_renderer_emits_no_link_for_a_non_http_url_even_if_the_schema_were_bypassed(tree):
    from lvlm_atlas.site.build import make_context
    from lvlm_atlas.site.pages.papers import paper_page

    paper = tree.catalog.by_id["kvsqueeze"]
    bad_links = Links.model_construct(paper="javascript:alert(1)", pdf="data:text/html,x", code=[],
                                      project="vbscript:x")
    bad = paper.model_copy(update={"links": bad_links})
    ctx = make_context(tree.catalog, tree.docs, cards_dir=tree.root / "none", bench_dir=tree.root / "none")
    md = paper_page(ctx, bad)
    import re

    assert not re.search(r"(href|src)=\"?\s*(javascript|data|vbscript):", md, re.I)
    assert not re.search(r"\]\(\s*(javascript|data|vbscript):", md, re.I)
    assert "Paper · PDF · Project page" in md   # shown as plain labels instead


def test_schema_rejects_script_urls(tmp_path):
    from tests.site_helpers import base_paper, write_tree

    with pytest.raises(AssertionError, match="scheme"):
        write_tree(tmp_path, [base_paper("bad-url", links={"paper": "javascript:alert(1)"})], with_card=False)

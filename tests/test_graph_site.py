"""The citation-graph pages in the built test site: graph page, data, SVG fallback, paper sections,
and (in headless Chromium) the interactive graph: nodes drawn, filters, search, click navigates."""
from __future__ import annotations

import functools
import json
import shutil
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.site_helpers import built_site


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.svg_links: list[str] = []
        self._svg = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "atlas-graph-svg" in (a.get("class") or ""):
            self._svg += 1
        if tag == "a" and self._svg:
            self.svg_links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "svg" and self._svg:
            self._svg -= 1


def test_graph_data_covers_every_paper_with_working_links():
    tree = built_site()
    data = json.loads((tree.docs / "assets" / "data" / "citation-graph.json").read_text())
    ids = [n["id"] for n in data["nodes"]]
    assert ids == sorted(p.id for p in tree.catalog.papers)
    for n in data["nodes"]:
        assert 0 <= n["x"] <= 1000 and 0 <= n["y"] <= 1000 and n["size"] > 0
        target = (tree.site / "graph" / n["url"]).resolve()
        assert (target / "index.html").is_file(), n["url"]
    # the curated builds_on edge mergeall -> fastprune is there
    edges = {(ids[a], ids[b], k) for a, b, k in data["edges"]}
    assert ("mergeall", "fastprune", "builds_on") in edges


def test_static_svg_fallback_links_every_paper():
    tree = built_site()
    html = (tree.site / "graph" / "index.html").read_text()
    parser = _Links()
    parser.feed(html)
    assert len(parser.svg_links) == len(tree.catalog.papers)
    for href in parser.svg_links:
        assert ((tree.site / "graph" / href).resolve() / "index.html").is_file(), href
    assert "cytoscape.min.js" in html and "<script src=\"http" not in html
    assert (tree.site / "assets" / "vendor" / "cytoscape" / "cytoscape.min.js").is_file()
    assert (tree.site / "assets" / "vendor" / "cytoscape" / "LICENSE").is_file()


def _text(html: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed (tags dropped)."""
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_paper_pages_show_cites_cited_by_and_ego_graph():
    tree = built_site()
    fast = (tree.site / "papers" / "fastprune" / "index.html").read_text()
    assert "Cited by in the catalog (1): Mergeall" in _text(fast)
    assert "Cites in the catalog (0): none so far" in _text(fast)
    assert '<h2 id="citations-in-the-catalog">Citations in the catalog</h2>' in fast
    assert 'class="atlas-ego-graph"' in fast
    assert 'href="../mergeall/"' in fast or 'href="../../papers/mergeall/"' in fast
    merge = (tree.site / "papers" / "mergeall" / "index.html").read_text()
    assert "Cites in the catalog (1): Fastprune" in _text(merge)
    assert "Lineage: Mergeall → Fastprune" in _text(merge)
    for page, html in (("fastprune", fast), ("mergeall", merge)):
        # every paper link of the section resolves to a built page; the section is plain HTML, no Markdown left
        section = html[html.index('id="citations-in-the-catalog"'):]
        for href in __import__("re").findall(r'<a href="(\.\./[^"#]+)"', section):
            assert ((tree.site / "papers" / page / href).resolve() / "index.html").is_file(), href
        assert "**" not in section and "](" not in section
    # the placeholder for the citations slot is gone once the section is there
    assert 'data-slot="citations"' not in fast


# ---------------- headless Chromium ----------------

def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("chromium and chromedriver are needed for the browser test")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_bin), options=opts)


@pytest.fixture(scope="module")
def served():
    site = built_site().site
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


@pytest.mark.browser
def test_graph_page_draws_nodes_filters_searches_and_click_navigates(served, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    tree = built_site()
    n_papers = len(tree.catalog.papers)
    browser.get(f"{served}/graph/")
    wait = WebDriverWait(browser, 20)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#atlas-graph[data-rendered]"))
    assert box.get_attribute("data-rendered") == str(n_papers)
    assert browser.find_elements(By.CSS_SELECTOR, "#atlas-graph canvas")
    assert not browser.find_elements(By.CSS_SELECTOR, "#atlas-graph .atlas-graph-fallback")
    drawn = browser.execute_script("return window.atlasCitationGraph.nodes().map(n => n.id()).sort()")
    assert drawn == sorted(p.id for p in tree.catalog.papers)

    # stage filter: hide decoding papers
    decoding = sum(1 for p in tree.catalog.papers
                   if tree.catalog.taxonomy.node_by_id[p.primary_node].stage == "decoding")
    assert decoding > 0
    browser.find_element(By.CSS_SELECTOR, "#atlas-graph-controls input[value=decoding]").click()
    wait.until(lambda d: box.get_attribute("data-visible") == str(n_papers - decoding))
    browser.find_element(By.CSS_SELECTOR, "#atlas-graph-controls input[value=decoding]").click()
    wait.until(lambda d: box.get_attribute("data-visible") == str(n_papers))

    # search highlights the node
    q = browser.find_element(By.CSS_SELECTOR, "#atlas-graph-controls input[name=q]")
    q.send_keys("mergeall", Keys.ENTER)
    wait.until(lambda d: d.execute_script("return window.atlasCitationGraph.$id('mergeall').hasClass('hit')"))
    browser.execute_script("window.atlasCitationGraph.elements().removeClass('faded hit');"
                           "window.atlasCitationGraph.stop(true, true); window.atlasCitationGraph.fit();")

    # a real mouse click on a node opens its paper page
    # (on a loaded machine the viewport may still be settling after fit(): re-read the position and retry)
    from selenium.common.exceptions import TimeoutException

    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    for attempt in range(4):
        x, y = browser.execute_script(
            "const p = window.atlasCitationGraph.$id('fastprune').renderedPosition(); return [p.x, p.y];")
        rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", box)
        ActionChains(browser).move_to_element_with_offset(box, int(x - rect[0] / 2), int(y - rect[1] / 2)).click().perform()
        try:
            WebDriverWait(browser, 5).until(lambda d: d.current_url.rstrip("/").endswith("/papers/fastprune"))
            break
        except TimeoutException:
            if attempt == 3:
                raise
    assert "Cited by in the catalog" in browser.page_source

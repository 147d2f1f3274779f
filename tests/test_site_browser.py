"""Drive Debian's headless Chromium against the built test site: the Explorer filters, sorts and keeps
its state in the URL; a paper page's BibTeX copy button copies the exporter's entry; hostile entries
stay text. Saves screenshots to build/test-artifacts/."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from lvlm_atlas import paths
from lvlm_atlas.catalog.exports import bibtex_entry
from tests.site_helpers import built_site

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = paths.ROOT / "build" / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1300,1000"]


def _requirements() -> str | None:
    if not CHROMIUM:
        return "Debian's chromium is not installed (apt-get install -y chromium chromium-driver)"
    if not DRIVER:
        return "chromedriver is not installed (apt-get install -y chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (pip install selenium; it is in the dev extra)"
    return None


@pytest.fixture(scope="module")
def server():
    tree = built_site()
    handler = functools.partial(_QuietHandler, directory=str(tree.site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield tree, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def driver():
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


def _wait(drv, predicate, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout).until(predicate)


def _rows(drv) -> list[str]:
    return drv.execute_script("return Array.from(document.querySelectorAll('#ax-table tbody tr')).map(r => r.dataset.id)")


def _haystack(p, tax) -> str:
    return " ".join([p.id, p.name, p.title, " ".join(p.authors), p.venue or "", p.summary,
                     tax.node_by_id[p.primary_node].label, str(p.year)]).lower()


def test_explorer_filters_sorts_and_keeps_state_in_the_url(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    tree, base = server
    tax = tree.catalog.taxonomy
    driver.get(base + "explorer/")
    _wait(driver, lambda d: d.find_element(By.ID, "atlas-explorer").get_attribute("data-ready") == "1")
    assert len(_rows(driver)) == len(tree.catalog.papers)

    driver.find_element(By.ID, "ax-q").send_keys("zebra")
    Select(driver.find_element(By.ID, "ax-stage")).select_by_value("encoding")
    expected = sorted(p.id for p in tree.catalog.papers
                      if "zebra" in _haystack(p, tax) and "encoding" in p.stages(tax))
    assert expected == ["framepick"]                      # the test catalog is built for this
    _wait(driver, lambda d: sorted(_rows(d)) == expected and "text=zebra" in d.current_url)
    assert "stage=encoding" in driver.current_url
    count = driver.find_element(By.ID, "ax-count").text
    assert count == f"Showing {len(expected)} of {len(tree.catalog.papers)} papers"

    shared = driver.current_url                          # a shared link restores the same view
    driver.get(base + "index.html")
    driver.get(shared)
    _wait(driver, lambda d: d.find_element(By.ID, "atlas-explorer").get_attribute("data-ready") == "1")
    assert sorted(_rows(driver)) == expected
    assert driver.find_element(By.ID, "ax-q").get_attribute("value") == "zebra"
    assert Select(driver.find_element(By.ID, "ax-stage")).first_selected_option.get_attribute("value") == "encoding"

    driver.find_element(By.ID, "ax-reset").click()
    _wait(driver, lambda d: len(_rows(d)) == len(tree.catalog.papers))
    driver.find_element(By.CSS_SELECTOR, 'th[data-key="name"] button').click()
    names = sorted((p.name.lower(), p.id) for p in tree.catalog.papers)
    _wait(driver, lambda d: _rows(d) == [i for _, i in names])
    assert "sort=name" in driver.current_url and "dir=asc" in driver.current_url

    Select(driver.find_element(By.ID, "ax-stage")).select_by_value("decoding")
    driver.find_element(By.ID, "ax-runnable").click()
    _wait(driver, lambda d: d.find_element(By.ID, "ax-count").text.startswith("Showing 0 of"))
    driver.find_element(By.ID, "ax-runnable").click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "explorer.png"))
    assert (ARTIFACTS / "explorer.png").stat().st_size > 10_000


def test_hostile_row_is_text_and_nothing_executes(server, driver):
    from selenium.webdriver.common.by import By

    tree, base = server
    driver.get(base + "explorer/?text=mallory")
    _wait(driver, lambda d: d.find_element(By.ID, "atlas-explorer").get_attribute("data-ready") == "1")
    assert _rows(driver) == ["hostile-entry"]
    row = driver.find_element(By.CSS_SELECTOR, "#ax-table tbody tr")
    assert "<img src=x onerror=alert('xss-name')>" in row.text
    assert driver.execute_script("return document.querySelectorAll('#ax-table img, #ax-table iframe, #ax-table svg').length") == 0
    driver.get(base + "papers/hostile-entry/")
    _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")
    # An executed alert() would leave a dialog open and make this call raise.
    assert "<script>alert('xss-title')</script>" in driver.find_element(By.TAG_NAME, "h1").text
    assert driver.execute_script("return document.querySelectorAll('article img, article iframe, article svg').length") == 0


def test_bibtex_copy_button_copies_the_entry(server, driver):
    from selenium.webdriver.common.by import By

    tree, base = server
    paper = tree.catalog.by_id["fastprune"]
    driver.get(base + "papers/fastprune/")
    button = _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".atlas-bibtex .md-clipboard, .atlas-bibtex + .md-clipboard, pre.atlas-bibtex button"))
    target = button.get_attribute("data-clipboard-target")
    assert target
    copied = driver.execute_script("return document.querySelector(arguments[0]).textContent", target)
    assert copied == bibtex_entry(paper).strip("\n")
    driver.save_screenshot(str(ARTIFACTS / "paper.png"))


def test_leaderboard_sorts_and_shows_the_catalogs_values(server, driver):
    from selenium.webdriver.common.by import By

    tree, base = server
    own64 = {r.method: r.scores["gqa"] for f in tree.catalog.results for t in f.tables for r in t.rows
             if t.model == "llava-1.5-7b" and r.role == "own" and r.setting.visual_tokens == 64 and "gqa" in r.scores}
    assert len(own64) >= 2
    driver.get(base + "results/llava-1.5-7b/")
    _wait(driver, lambda d: d.execute_script("return document.querySelector('table.atlas-leaderboard[data-sortable-ready]') !== null"))
    table = next(t for t in driver.find_elements(By.CSS_SELECTOR, "table.atlas-leaderboard")
                 if t.find_element(By.XPATH, "./preceding::h2[1]").text.startswith("64 visual tokens"))
    headers = [h.text.strip() for h in table.find_elements(By.CSS_SELECTOR, "thead th")]
    col = headers.index("GQA")

    def column():
        return [float(r.find_elements(By.TAG_NAME, "td")[col].text) for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

    table.find_elements(By.CSS_SELECTOR, "thead th button")[col].click()
    _wait(driver, lambda d: column() == sorted(own64.values()))
    table.find_elements(By.CSS_SELECTOR, "thead th button")[col].click()
    _wait(driver, lambda d: column() == sorted(own64.values(), reverse=True))
    first = table.find_element(By.CSS_SELECTOR, "tbody tr td").text
    best = max(own64, key=own64.get)
    assert first.startswith(tree.catalog.by_id[best].name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "leaderboard.png"))


def test_category_table_needs_no_sideways_scrolling_at_1280px(server, driver):
    tree, base = server
    driver.set_window_size(1280, 900)
    try:
        driver.get(base + "categories/prefilling/token-compression/attention-guided/")
        _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")
        widths = driver.execute_script(
            "var t = document.querySelector('table.atlas-methods');"
            "return [t.scrollWidth, t.parentElement.clientWidth, document.documentElement.scrollWidth, window.innerWidth,"
            " t.querySelector('th:nth-child(7)').getBoundingClientRect().width, t.getBoundingClientRect().width];")
        table_w, box_w, page_w, win_w, key_w, full_w = widths
        assert table_w <= box_w + 1 and page_w <= win_w, widths
        assert key_w >= 0.3 * full_w, widths          # the key idea gets the room
        driver.save_screenshot(str(ARTIFACTS / "category-1280.png"))
    finally:
        driver.set_window_size(1300, 1000)

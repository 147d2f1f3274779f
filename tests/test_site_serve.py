"""`make serve` keeps the served site in step with the catalog (lvlm_atlas/site/mkdocs_live_catalog.py):
a real `mkdocs serve` on a copy of the project regenerates a paper's page after its YAML file is saved,
keeps the previous pages and stops with the validator's message when a saved file is invalid, and
recovers once it is fixed."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lvlm_atlas import paths
from lvlm_atlas.site import mkdocs_live_catalog as live
from tests.site_helpers import catalog_entries, write_tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode("utf-8")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _wait_for(predicate, timeout: float, what: str, log: Path):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; serve log:\n{log.read_text(encoding='utf-8')[-4000:]}")


@pytest.fixture()
def project(tmp_path):
    """A small copy of the project: its code, config, taxonomy and hand-written pages, and a test catalog."""
    root = tmp_path / "atlas"
    # the package; its method cards are replaced by the test catalog's one card (moved in below)
    shutil.copytree(paths.ROOT / "lvlm_atlas", root / "lvlm_atlas", ignore=shutil.ignore_patterns("__pycache__", "cards"))
    shutil.copytree(paths.ROOT / "docs", root / "docs")
    shutil.copy(paths.ROOT / "mkdocs.yml", root / "mkdocs.yml")
    (root / "catalog").mkdir()
    for name in ("taxonomy.yaml", "models.yaml", "gpus.yaml", "results-vocab.yaml"):
        if (paths.CATALOG / name).is_file():
            shutil.copy(paths.CATALOG / name, root / "catalog" / name)
    shutil.copytree(paths.CATALOG / "schema", root / "catalog" / "schema")
    write_tree(root, catalog_entries())
    shutil.move(root / "methods" / "cards", root / "lvlm_atlas" / "methods" / "cards")
    return root


def test_fingerprint_changes_with_any_input_file(tmp_path):
    (tmp_path / "catalog" / "papers").mkdir(parents=True)
    paper = tmp_path / "catalog" / "papers" / "a.yaml"
    paper.write_text("x: 1\n", encoding="utf-8")
    first = live.fingerprint(tmp_path, ("catalog",))
    assert live.fingerprint(tmp_path, ("catalog",)) == first
    paper.write_text("x: 22\n", encoding="utf-8")
    assert live.fingerprint(tmp_path, ("catalog",)) != first
    second = live.fingerprint(tmp_path, ("catalog",))
    (tmp_path / "catalog" / "papers" / "b.yaml").write_text("x: 1\n", encoding="utf-8")
    assert live.fingerprint(tmp_path, ("catalog",)) != second


def test_hook_leaves_builds_and_other_docs_folders_alone(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(live, "regenerate", lambda *a, **k: calls.append(a))
    live.on_startup("build", dirty=False)
    live.on_pre_build({"docs_dir": str(live._generated_docs())})
    live.on_startup("serve", dirty=False)
    live.on_pre_build({"docs_dir": str(tmp_path)})
    assert calls == []


@pytest.mark.slow
def test_serve_regenerates_pages_when_the_catalog_changes(project, tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(project))
    gen = subprocess.run([sys.executable, "-m", "lvlm_atlas", "build"], cwd=project, capture_output=True, text=True, env=env)
    assert gen.returncode == 0, gen.stdout + gen.stderr
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "--strict", "--dev-addr", f"127.0.0.1:{port}"],
                                  cwd=project, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/papers/fastprune/"
        page = _wait_for(lambda: _get(url), 120, "the first build", log)
        assert "FastPrune" in page and "Retitled by the live preview test" not in page

        paper = project / "catalog" / "papers" / "fastprune.yaml"
        original = paper.read_text(encoding="utf-8")
        paper.write_text(original.replace("summary: ", "summary: Retitled by the live preview test. ", 1), encoding="utf-8")
        _wait_for(lambda: "Retitled by the live preview test" in (_get(url) or ""), 120, "the regenerated page", log)

        # an invalid file: the rebuild stops with the validator's message naming the file (MkDocs then
        # holds requests until a build succeeds again, as for any failed strict build)
        paper.write_text(original.replace("year: ", "year: not-a-year # ", 1), encoding="utf-8")
        _wait_for(lambda: "could not be regenerated" in log.read_text(encoding="utf-8"), 120, "the error message", log)
        assert "fastprune.yaml" in log.read_text(encoding="utf-8")
        assert "Retitled by the live preview test" in (project / "build" / "docs" / "papers" / "fastprune.md").read_text(
            encoding="utf-8")  # the previous pages were kept

        paper.write_text(original, encoding="utf-8")
        _wait_for(lambda: "Retitled by the live preview test" not in (_get(url) or "Retitled by the live preview test"),
                  120, "the page after the fix", log)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

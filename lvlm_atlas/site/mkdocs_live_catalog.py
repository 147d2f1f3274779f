"""MkDocs hook (mkdocs.yml `hooks:`): while `mkdocs serve` runs, regenerate the pages when their inputs
change, so that editing a paper's YAML file shows up in the browser like editing a Markdown page would.

The site's Markdown is generated from the catalog (`atlas build` into `build/docs`), and
MkDocs only watches that generated folder. In `mkdocs serve` (never in `mkdocs build`) this hook also
watches the generator's inputs (the catalog, method cards, hand-written pages in `docs/`) and, before
each rebuild, runs the generator again if any of those files changed since the last generation. The
generator runs in a subprocess, so a fresh Python reads the changed data, and it swaps its output in
atomically: an invalid catalog leaves the previous generated pages in place and fails the rebuild with
the validator's messages (file:line: what to write instead) in the serve log; as for any failed build,
MkDocs holds page requests until a save fixes it.

Only the docs folder the generator writes by default (`build/docs` next to this repository's
mkdocs.yml) is regenerated; a config pointed elsewhere (tests, benchmarks) is left alone. This file
must not import the rest of the project (MkDocs loads it by path).
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.atlas_live_catalog")

INPUTS = ("catalog", "lvlm_atlas/methods/cards", "docs")  # what `atlas build` reads, relative to the root

# The project root is the folder of the mkdocs.yml being served (set in on_config).
_state: dict = {"serving": False, "fingerprint": None, "root": Path.cwd()}


def _root() -> Path:
    return _state["root"]


def _generated_docs() -> Path:
    return _root() / "build" / "docs"


def fingerprint(root: Path | None = None, inputs=INPUTS) -> str:
    """A digest of the names, sizes and modification times of every input file."""
    root = root or _root()
    digest = hashlib.sha256()
    for rel in inputs:
        base = root / rel
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except OSError:  # deleted while we looked
                    continue
                digest.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def regenerate(docs_dir: Path, root: Path | None = None) -> bool:
    """Run the generator into `docs_dir`; True on success, otherwise log its messages and return False."""
    proc = subprocess.run([sys.executable, "-m", "lvlm_atlas", "build", "--out", str(docs_dir)], cwd=root or _root(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        log.error("the catalog changed but the pages could not be regenerated (the previous ones are kept); "
                  "fix these problems and save again:\n%s", (proc.stdout + proc.stderr).strip())
        return False
    log.info("catalog changed: %s", proc.stdout.strip())
    return True


def _is_generated_docs(config) -> bool:
    try:
        return Path(config["docs_dir"]).resolve() == _generated_docs().resolve()
    except (KeyError, TypeError, OSError):
        return False


def on_config(config):
    config_file = getattr(config, "config_file_path", None)
    if config_file:
        _state["root"] = Path(config_file).resolve().parent
    return config


def on_startup(command, dirty):
    _state.update(serving=command == "serve", fingerprint=None)


def on_serve(server, config, builder):
    if _is_generated_docs(config):
        for rel in INPUTS:
            if (_root() / rel).is_dir():
                server.watch(str(_root() / rel))
    return server


def on_pre_build(config):
    if not _state["serving"] or not _is_generated_docs(config):
        return
    now = fingerprint()
    before = _state["fingerprint"]
    _state["fingerprint"] = now
    if before is None and _generated_docs().is_dir():
        return  # first build of the session: `make serve` generated the pages just before
    if now != before:
        regenerate(_generated_docs())

"""Where the project's data lives.

The project root is the folder that holds `catalog/`: the `LVLM_ATLAS_ROOT` environment variable
(what `atlas --root DIR` sets) when given, otherwise the nearest folder at or above the working
directory that holds `catalog/`, otherwise the working directory itself. Data paths never come from
the location of a module, so an installed package works on any checkout of the catalog.

The names below are fixed when this module is first imported; `atlas --root` sets the variable
before any command module is imported.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "LVLM_ATLAS_ROOT"


def find_root(start: Path | None = None) -> Path:
    """The project root: $LVLM_ATLAS_ROOT, else the nearest folder at or above `start` holding catalog/."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "catalog").is_dir():
            return folder
    return here


ROOT = find_root()
CATALOG = ROOT / "catalog"
PAPERS = CATALOG / "papers"
TAXONOMY = CATALOG / "taxonomy.yaml"
SCHEMA_DIR = CATALOG / "schema"
PAPER_SCHEMA = SCHEMA_DIR / "paper.schema.json"
BENCHMARKS = CATALOG / "benchmarks"

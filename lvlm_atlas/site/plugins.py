"""The one list of modules that register page builders and paper sections.

Importing a module registers its builders (see `lvlm_atlas.site.registry`). Order matters: it is the
order of paper-page sections. To add pages from another part of the project, append your module here.
"""
from __future__ import annotations

import importlib

MODULES = [
    "lvlm_atlas.site.pages.home",
    "lvlm_atlas.site.pages.taxonomy",
    "lvlm_atlas.site.pages.papers",
    "lvlm_atlas.site.pages.facets",
    "lvlm_atlas.site.pages.explorer",
    "lvlm_atlas.site.pages.recent",
    "lvlm_atlas.site.pages.exports",
    "lvlm_atlas.site.pages.contributing",
    "lvlm_atlas.site.pages.methods",
    "lvlm_atlas.site.pages.results",
    "lvlm_atlas.site.pages.graph",
    "lvlm_atlas.site.pages.costmodel",
]


def load_plugins() -> None:
    for name in MODULES:
        importlib.import_module(name)

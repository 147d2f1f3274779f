"""The one list of modules that register page builders and paper sections.

Importing a module registers its builders (see `site_gen.render.registry`). Order matters: it is the
order of paper-page sections. To add pages from another part of the project, append your module here.
"""
from __future__ import annotations

import importlib

MODULES = [
    "site_gen.render.pages.home",
    "site_gen.render.pages.taxonomy",
    "site_gen.render.pages.papers",
    "site_gen.render.pages.facets",
    "site_gen.render.pages.explorer",
    "site_gen.render.pages.recent",
    "site_gen.render.pages.exports",
    "site_gen.render.pages.contributing",
    "site_gen.render.pages.methods",
    "site_gen.graph_site",
    "site_gen.render.pages.costmodel",
]


def load_plugins() -> None:
    for name in MODULES:
        importlib.import_module(name)

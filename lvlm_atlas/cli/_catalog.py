"""Loading the catalog for a command: on an invalid catalog, say so once, the same way everywhere."""
from __future__ import annotations

import sys

from lvlm_atlas.catalog.loader import Catalog, CatalogError, load_catalog


def catalog_or_report() -> Catalog | None:
    """The validated catalog, or None after printing its problems and how to list them (exit code 1)."""
    try:
        return load_catalog()
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        print("fix the catalog first: `atlas validate` lists every problem", file=sys.stderr)
        return None

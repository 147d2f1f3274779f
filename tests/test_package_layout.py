"""The package's shape: one top-level import package, layers that only import downwards, no circles."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lvlm_atlas"

# sub-package -> sub-packages it may import (besides itself); the data flows catalog -> ... -> site / cli
ALLOWED = {
    "paths": set(),
    "catalog": {"paths"},
    "costmodel": {"paths"},
    "kernels": set(),
    "enrich": {"paths", "catalog"},
    "graph": {"catalog", "enrich"},
    "ingest": {"paths", "catalog"},
    "methods": {"paths", "catalog", "costmodel", "kernels"},
    "site": {"paths", "catalog", "costmodel", "enrich", "graph"},
    "cli": {"paths", "catalog", "costmodel", "enrich", "graph", "ingest", "methods", "site", "kernels"},
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("lvlm_atlas")}


def _sub(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_one_top_level_import_package():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    tops = {f.split("/")[0] for f in files if "/" in f and not f.startswith(("tests/", ".ci/", ".github/"))}
    loose = [f for f in files if "/" not in f]
    assert tops == {"lvlm_atlas"} and loose == []


def test_layers_import_only_downwards_and_nothing_uses_relative_imports():
    bad = []
    for path in PKG.rglob("*.py"):
        src = _sub(_module(path))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)):
            bad.append(f"{path.relative_to(ROOT)}: relative import")
        if src is None or src == "__main__":
            continue
        for imp in _imports(path):
            dst = _sub(imp)
            if dst and dst != src and dst in ALLOWED and dst not in ALLOWED[src]:
                bad.append(f"{path.relative_to(ROOT)} imports {imp} ({src} -> {dst} is not allowed)")
    assert bad == []


def test_no_import_circles_between_modules():
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        for imp in _imports(path):
            target = imp if imp in modules else imp.rsplit(".", 1)[0]
            if target in modules and target != name and not name.startswith(target + ".") and target != "lvlm_atlas":
                g.add_edge(name, target)
    cycles = list(nx.simple_cycles(g))
    assert cycles == [], cycles[:5]


def test_atlas_help_needs_no_optional_dependency():
    """`atlas --help` imports every command module: none may import an extra's package (network clients,
    MkDocs, torch) at import time, so a plain `pip install .` can list and explain every command."""
    import sys as _sys

    code = ("import sys, lvlm_atlas.cli as c, importlib\n"
            "[importlib.import_module('lvlm_atlas.cli.' + n) for n in c.COMMANDS]\n"
            "bad = sorted(m for m in ('httpx', 'arxiv', 'semanticscholar', 'requests', 'mkdocs', 'torch', 'triton')"
            " if m in sys.modules)\n"
            "print(','.join(bad))")
    out = subprocess.run([_sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

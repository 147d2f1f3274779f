"""Print the dependencies declared in pyproject.toml (core + the extras named on the command line).

The Makefile installs these into .venv without installing the project itself, so that the
working tree is what runs (no stale copy in site-packages).
"""
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
deps = list(project["dependencies"])
for extra in filter(None, ",".join(sys.argv[1:]).split(",")):
    deps += project["optional-dependencies"][extra]
print(" ".join(deps))

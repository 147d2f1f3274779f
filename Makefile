# LVLM Atlas. `make serve` builds and serves the site; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Pin torch explicitly: a range would pull a newer (CUDA) build.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= site,methods,kernels,ingest,dev
STAMP := $(VENV)/.deps-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: venv test validate site serve clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q "$(TORCH_SPEC)" $$($(PY) .ci/deps.py $(EXTRAS))
	rm -f $(VENV)/.deps-*
	touch $(STAMP)

test: venv
	$(PY) -m site_gen validate
	$(PY) -m pytest -q

validate: venv
	$(PY) -m site_gen validate

# The website: generate Markdown from the catalog into build/docs, then build it strictly into site/.
export NO_MKDOCS_2_WARNING := 1
site: venv
	$(PY) -m site_gen build
	$(PY) -m mkdocs build --strict --site-dir site

# Serve it on http://127.0.0.1:8000; saving a catalog file regenerates the pages (mkdocs_live_catalog hook).
serve: venv
	$(PY) -m site_gen build
	$(PY) -m mkdocs serve --strict --dev-addr 127.0.0.1:8000

clean:
	rm -rf build site .pytest_cache

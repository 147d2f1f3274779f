# LVLM Atlas. `make serve` builds and serves the site; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Pin torch explicitly: a range would pull a newer (CUDA) build.
TORCH_SPEC ?= torch==2.13.0
# Exact versions with which `make test` passed; `make lock` refreshes it (see README).
LOCK := requirements/lock.txt
STAMP := $(VENV)/.deps-$(shell cat pyproject.toml Makefile $(LOCK) | cksum | cut -d' ' -f1)
# transformers at the old end of the supported range (what common GPU images ship), for `make test-compat`.
COMPAT_TRANSFORMERS ?= 5.17.0
METHOD_TESTS := tests/test_methods_framework.py tests/test_methods_presets.py tests/test_methods_cli.py \
	tests/test_kv_methods.py tests/test_kv_evict.py tests/test_kv_fused_decode.py tests/test_sparsemm.py tests/test_budget.py \
	tests/test_methods_cards.py tests/test_transformers_adapter.py tests/test_tome.py tests/test_fastvid.py tests/test_dycoke.py \
	tests/test_specvlm.py

.PHONY: venv test test-compat test-latest lock validate site serve clean gpu-check

venv: $(STAMP)

# The locked environment: torch pinned, every other distribution at its locked version, the project
# itself installed editable without dependencies (so the working tree is what runs, and `atlas` exists).
$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q "$(TORCH_SPEC)" -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.deps-*
	touch $(STAMP)

test: venv
	$(PY) -m lvlm_atlas validate
	$(PY) -m pytest -q

# The methods tests under the old end of the transformers range (a second venv; the lock otherwise).
test-compat: venv
	test -x .venv-compat/bin/python || $(PYTHON) -m venv .venv-compat
	grep -vE '^(transformers|huggingface.hub|tokenizers|safetensors)==' $(LOCK) > .venv-compat/lock.txt
	.venv-compat/bin/python -m pip install -q "$(TORCH_SPEC)"
	.venv-compat/bin/python -m pip install -q "$(TORCH_SPEC)" -r .venv-compat/lock.txt "transformers==$(COMPAT_TRANSFORMERS)"
	.venv-compat/bin/python -m pip install -q --no-deps -e .
	.venv-compat/bin/python -m pytest -q $(METHOD_TESTS)

# The newest releases the declared ranges allow (what a fresh `pip install .` gets today), in a throw-away venv.
test-latest:
	rm -rf .venv-latest && $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q "$(TORCH_SPEC)"
	.venv-latest/bin/python -m pip install -q --upgrade "$(TORCH_SPEC)" -e ".[site,methods,kernels,ingest,dev]"
	.venv-latest/bin/python -m pip freeze --exclude-editable | sed 's/^/  /'
	.venv-latest/bin/python -m pytest -q

# Refresh the lock: resolve the newest allowed versions in a clean venv, run the tests there, and only
# then write requirements/lock.txt (atomically).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q "$(TORCH_SPEC)"
	.venv-lock/bin/python -m pip install -q "$(TORCH_SPEC)" -e ".[site,methods,kernels,ingest,dev]"
	.venv-lock/bin/python -m pytest -q -x
	.venv-lock/bin/python .ci/write_lock.py .venv-lock $(LOCK)

validate: venv
	$(PY) -m lvlm_atlas validate

# The website: generate Markdown from the catalog into build/docs, then build it strictly into site/.
export NO_MKDOCS_2_WARNING := 1
site: venv
	$(PY) -m lvlm_atlas build
	$(PY) -m mkdocs build --strict --site-dir site

# Serve it on http://127.0.0.1:8000; saving a catalog file regenerates the pages (mkdocs_live_catalog hook).
serve: venv
	$(PY) -m lvlm_atlas build
	$(PY) -m mkdocs serve --strict --dev-addr 127.0.0.1:8000

# Every GPU check in one script (CUDA tests, kernel bench, the method sweep); needs a CUDA GPU.
gpu-check:
	PYTHONUNBUFFERED=1 $(PYTHON) tests/bench/gpu_check.py --out $${OUT:-out/gpu-check}

clean:
	rm -rf build site .pytest_cache

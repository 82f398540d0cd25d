# Set-up is idempotent: a venv cached outside the checkout, keyed by a hash of
# requirements-dev.txt, is linked as .venv; the package is installed editable on top.
PYTHON ?= python3
REQ_HASH := $(shell sha256sum requirements-dev.txt | cut -c1-12)
VENV_CACHE ?= $(HOME)/.cache/dataprune/venv-$(REQ_HASH)
VENV := .venv
PY := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup demo test docs bench-recorder clean

# The cached venv is shared by every checkout that uses it: the package is (re)installed
# editable whenever the venv's `dataprune` is not this checkout's src/ (else one checkout
# would silently run another's code).
setup: $(VENV)/.dataprune-$(REQ_HASH) data
	@$(PY) -c "import importlib.util as u, os, sys; o = u.find_spec('dataprune').origin; \
	  sys.exit(not os.path.realpath(o).startswith(os.path.realpath('src') + os.sep))" 2>/dev/null \
	  || $(PY) -m pip install -q --no-deps --no-build-isolation -e .

$(VENV)/.dataprune-$(REQ_HASH): requirements-dev.txt pyproject.toml
	@if [ ! -x "$(VENV_CACHE)/bin/python" ] || [ ! -f "$(VENV_CACHE)/.complete" ]; then \
	  rm -rf "$(VENV_CACHE)" && mkdir -p "$(dir $(VENV_CACHE))" && \
	  $(PYTHON) -m venv "$(VENV_CACHE)" && \
	  "$(VENV_CACHE)/bin/pip" install -q --upgrade pip && \
	  "$(VENV_CACHE)/bin/pip" install -q $$(grep -E '^(torch|torchvision)==' requirements-dev.txt) && \
	  "$(VENV_CACHE)/bin/pip" install -q -r requirements-dev.txt && \
	  touch "$(VENV_CACHE)/.complete"; \
	fi
	@if [ -e $(VENV) ] && [ "$$(readlink $(VENV))" != "$(VENV_CACHE)" ]; then rm -rf $(VENV); fi
	@ln -sfn "$(VENV_CACHE)" $(VENV)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

data:
	@if ! ls $(FMNIST)/train-images-idx3-ubyte* >/dev/null 2>&1; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist); \
	fi

demo: setup
	$(VENV)/bin/dataprune demo --out runs/demo --force  # the demo's own scratch folder: rerunning replaces it

test: setup
	$(PY) -m pytest -q

# The documentation site (mkdocs.yml; nothing is downloaded) into site/; warnings are errors.
docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

bench-recorder: setup
	$(PY) benchmarks/recorder_overhead.py

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info

# The two quickstart commands (`make demo`, `make test`) are all the set-up there is:
# each target creates .venv when missing and installs what it needs, once per change of
# pyproject.toml (a stamp file records it), so a second run starts at once.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: demo test bench lint bundle clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

# torch is pinned and installed first: the CPU build of 2.13.0, so that the dense extra's
# sentence-transformers does not pull a CUDA build onto machines without a GPU.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,dense,read,train,web,scale]'
	@touch $@ $(VENV)/.core-installed

demo: $(VENV)/.core-installed  ## run the offline demo on the bundled data
	$(BIN)/medresearcher demo

test: $(VENV)/.dev-installed  ## run the whole test suite
	$(BIN)/python -m pytest

bench: $(VENV)/.dev-installed  ## speed and quality benchmarks, with ratios to a baseline
	@set -e; for bench in benchmarks/bench_*.py; do \
		echo "== $$bench"; $(BIN)/python $$bench; done

lint: $(VENV)/.dev-installed  ## ruff
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bundle: $(VENV)/.core-installed  ## rebuild the embedded data bundles from ../shared/data
	$(BIN)/python scripts/build_demo_bundle.py

clean:
	rm -rf $(VENV) workspace .pytest_cache .ruff_cache

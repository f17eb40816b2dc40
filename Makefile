# The two quickstart commands (`make demo`, `make test`) are all the set-up there is:
# each target creates .venv when missing and installs what it needs, once per change of
# pyproject.toml (a stamp file records it), so a second run starts at once.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: demo test bench lint bundle web-assets clean

# The web UI's front-end libraries (d3) come from the npm registry at build time, pinned by
# package-lock.json, and are copied into the package's static folder (git-ignored; a wheel
# carries them as hatch artifacts). Never a CDN at run time, never pasted into git.
WEB_FRONTEND := src/medresearcher/web/frontend
WEB_VENDOR   := src/medresearcher/web/static/vendor

$(WEB_VENDOR)/.built: $(WEB_FRONTEND)/package.json $(WEB_FRONTEND)/package-lock.json
	@if ! command -v npm >/dev/null; then \
		echo "warning: npm not found: the web UI's graph view needs d3 (make web-assets)"; \
	else \
		cd $(WEB_FRONTEND) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
		&& cd - >/dev/null && mkdir -p $(WEB_VENDOR) \
		&& cp $(WEB_FRONTEND)/node_modules/d3/dist/d3.min.js $(WEB_VENDOR)/d3.min.js \
		&& cp $(WEB_FRONTEND)/node_modules/d3/LICENSE $(WEB_VENDOR)/d3.LICENSE \
		&& touch $@; \
	fi

web-assets: $(WEB_VENDOR)/.built  ## fetch the web UI's front-end libraries (npm ci)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core-installed: pyproject.toml | $(BIN)/python $(WEB_VENDOR)/.built
	$(PIP) install -e .
	@touch $@

# torch is pinned and installed first: the CPU build of 2.13.0, so that the dense extra's
# sentence-transformers does not pull a CUDA build onto machines without a GPU.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python $(WEB_VENDOR)/.built
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
	rm -rf $(VENV) workspace .pytest_cache .ruff_cache $(WEB_VENDOR) $(WEB_FRONTEND)/node_modules

# Developer tasks. `make test` is the README's test command: it installs into .venv and runs every test
# (unit + end-to-end on the local test cluster when run as root).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: deps install test unit e2e corpus-e2e lint fix types versions check demo bench bench-testbed clean testbed-up testbed-down testbed-status docs docs-check docs-serve reliability

$(BIN)/sparkrun: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c requirements.lock -e '.[dev]'
	# Test-only plugin distributions: one good third-party runtime, one that fails to import.
	$(BIN)/pip install $(PIP_FLAGS) -e tests/plugins/sparkrun-example-runtime -e tests/plugins/sparkrun-broken-runtime
	# Bytecode now, so start-up stays fast even where PYTHONDONTWRITEBYTECODE is set.
	$(BIN)/python -m compileall -q src >/dev/null
	touch $@

install: $(BIN)/sparkrun

# System packages (apt) for the test cluster; a no-op when present, a note when not root.
deps:
	bash scripts/install-deps.sh

test: deps install
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

e2e: deps install
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

# The reliability suite (unit part + e2e faults/hostile input on the test cluster: root) and its report,
# docs/reliability.md, generated from this run alone.
reliability: deps install
	rm -f build/reliability/results.json
	SPARKRUN_RELIABILITY_DOC=docs/reliability.md $(BIN)/pytest tests/unit/reliability tests/e2e/test_faults*.py \
		tests/e2e/test_hostile*.py $(PYTEST_ARGS)

# Every recipe of the public corpus (../shared/corpus/recipes) launched for real on the local test cluster (root):
# ready, or an expected failure (recipes/README.md, "Corpus end-to-end run"); report in build/corpus-e2e/.
corpus-e2e: deps install
	$(BIN)/python scripts/corpus-e2e.py $(CORPUS_E2E_ARGS)

SHELL_SCRIPTS := scripts/*.sh scripts/testbed/lib/*.sh scripts/testbed/fake-nvidia-smi bench/*.sh .ci/run \
	src/sparkrun/shell/*.sh src/sparkrun/shell/container/*.sh \
	$(filter-out %/netplan,$(wildcard scripts/testbed/hostbin/*))

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/shellcheck $(SHELL_SCRIPTS)

fix: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

types: install
	$(BIN)/mypy

versions: install
	$(BIN)/python scripts/update-versions.py --check

check: lint types versions

demo: deps install
	bash scripts/demo.sh

# CLI start-up and model download against the Hub stand-in (any user); the core loop on the local test cluster (root).
bench: install
	bash bench/cli_startup.sh
	bash bench/models.sh
	bash bench/core_loop.sh
	bash bench/setup_check.sh

bench-testbed:
	bash bench/testbed.sh

testbed-up:
	bash scripts/testbed.sh up $${N:-4}

testbed-down:
	bash scripts/testbed.sh down

testbed-status:
	bash scripts/testbed.sh status

# Documentation site (website/): MkDocs + Material + mkdocs-click, pinned by website/requirements.lock.
# `docs` builds it in strict mode (a broken link or anchor, a missing page or an undocumented command fails);
# `docs-check` also loads every page in headless Chromium (scripts/docs/check_site.py; needs Debian's chromium and
# chromium-driver: `bash scripts/install-deps.sh` as root) and saves screenshots under website/site/_screenshots/.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(BIN)/sparkrun website/requirements.lock
	$(BIN)/pip install $(PIP_FLAGS) -c requirements.lock -r website/requirements.lock
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -f website/mkdocs.yml

docs-check: docs
	$(BIN)/python scripts/docs/check_site.py website/site

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -f website/mkdocs.yml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache website/site

# Developer tasks. `make test` is the README's test command: it installs into .venv and runs every test
# (unit + end-to-end on the local test cluster when run as root).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: deps install test unit e2e lint fix types versions check demo bench clean testbed-up testbed-down

$(BIN)/sparkrun: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c requirements.lock -e '.[dev]'
	# Test-only plugin distributions: one good third-party runtime, one that fails to import.
	$(BIN)/pip install $(PIP_FLAGS) -e tests/plugins/sparkrun-example-runtime -e tests/plugins/sparkrun-broken-runtime
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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

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

bench: install
	bash bench/cli_startup.sh

testbed-up:
	bash scripts/testbed.sh up $${N:-4}

testbed-down:
	bash scripts/testbed.sh down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

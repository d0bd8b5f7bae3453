# Developer tasks. `make test` is the README's test command: it installs into .venv and runs every test
# (unit + end-to-end on the local test cluster when run as root).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: deps install test unit e2e lint fix types versions check demo bench bench-testbed clean testbed-up testbed-down testbed-status

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

SHELL_SCRIPTS := scripts/*.sh scripts/testbed/lib/*.sh scripts/testbed/fake-nvidia-smi bench/*.sh .ci/run \
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

# CLI start-up (any user); the core loop on the local test cluster (root).
bench: install
	bash bench/cli_startup.sh
	bash bench/core_loop.sh

bench-testbed:
	bash bench/testbed.sh

testbed-up:
	bash scripts/testbed.sh up $${N:-4}

testbed-down:
	bash scripts/testbed.sh down

testbed-status:
	bash scripts/testbed.sh status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

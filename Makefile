# Developer tasks. `make test` is the README's test command: it installs into .venv and runs every test
# (unit + end-to-end on the local test cluster when run as root).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install test unit e2e lint fix types versions check demo bench clean testbed-up testbed-down

$(BIN)/sparkrun: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c requirements.lock -e '.[dev]'
	touch $@

install: $(BIN)/sparkrun

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

e2e: install
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

demo: install
	bash scripts/demo.sh

bench: install
	bash bench/cli_startup.sh

testbed-up:
	bash scripts/testbed.sh up $${N:-4}

testbed-down:
	bash scripts/testbed.sh down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

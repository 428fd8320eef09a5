# The two commands that matter: `make run` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: run test test-fast lint protos protos-check bench clean

$(VENV)/.run-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.run-installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

## Start the whole suite locally (embedded NATS, Redis, SQLite unless DEELRX_*_URL say otherwise).
run: $(VENV)/.run-installed
	$(PY) -m deploy.local

## Unit, integration and end-to-end tests against real NATS, Redis, SQLite and PostgreSQL.
test: $(VENV)/.dev-installed
	$(BIN)/pytest $(PYTEST_ARGS)

## Only the fast unit tests.
test-fast: $(VENV)/.dev-installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

protos: $(VENV)/.dev-installed
	$(PY) scripts/gen_protos.py

protos-check: $(VENV)/.dev-installed
	$(PY) scripts/gen_protos.py --check

bench: $(VENV)/.dev-installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache

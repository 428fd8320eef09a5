# The two commands that matter: `make run` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# Independent tests run in parallel; the e2e suites stay on one worker (they share one running suite).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: run test test-slow test-unit test-fast test-integration test-e2e test-tools lint protos protos-check bench bench-quick lock clean

# Refuse an unsupported Python with a sentence, not with a failed build halfway through pip.
$(VENV)/.python-ok:
	@$(PYTHON) scripts/check_python.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	touch $@

# Installs come from the lock files (every transitive dependency pinned, with hashes): `make lock` remakes them.
$(VENV)/.run-installed: $(VENV)/.python-ok requirements/run.lock pyproject.toml
	$(BIN)/pip install -q --require-hashes -r requirements/run.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.run-installed requirements/dev.lock
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	touch $@

## Start the whole suite locally (embedded NATS, Redis, SQLite unless DEELRX_*_URL say otherwise).
run: $(VENV)/.run-installed
	$(PY) -m deploy.local

## Unit, integration and end-to-end tests against real NATS, Redis, SQLite and PostgreSQL.
## The long fuzzing and fault runs (marker `slow`) are left to `make test-slow`.
## DEELRX_REQUIRE_NGINX=1: the nginx forward-auth test fails (never skips) without nginx.
test: $(VENV)/.dev-installed test-tools
	DEELRX_REQUIRE_NGINX=1 $(PYTEST) -m "not slow" $(PYTEST_ARGS)

## Only the long fuzzing and fault runs (marker `slow`: tests/security, and the 10,000-event pipeline faults
## in tests/integration); CI runs them after `make test`.
test-slow: $(VENV)/.dev-installed test-tools
	$(PYTEST) -m slow tests/security tests/integration $(PYTEST_ARGS)

## Only the fast unit tests (no servers).
test-unit test-fast: $(VENV)/.dev-installed
	$(PYTEST) tests/unit $(PYTEST_ARGS)

## Services against real NATS, Redis, SQLite and PostgreSQL, one process each.
test-integration: $(VENV)/.dev-installed
	$(PYTEST) tests/integration $(PYTEST_ARGS)

## The whole suite as separate processes, driven through the gateway.
test-e2e: $(VENV)/.dev-installed test-tools
	DEELRX_REQUIRE_NGINX=1 $(PYTEST) tests/e2e $(PYTEST_ARGS)

## Debian tools that tests drive as independent peers; installed when missing (CI runs as root).
test-tools:
	@bash scripts/install_test_tools.sh oathtool nginx redis-server pg_ctlcluster=postgresql chromium node=nodejs

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

protos: $(VENV)/.dev-installed
	$(PY) scripts/gen_protos.py

protos-check: $(VENV)/.dev-installed
	$(PY) scripts/gen_protos.py --check

# The `limits` library, compared with the gateway's limiter in bench/ratelimit_bench.py.
$(VENV)/.bench-installed: $(VENV)/.dev-installed requirements/bench.lock
	$(BIN)/pip install -q --require-hashes -r requirements/bench.lock
	touch $@

# The peers of the benchmarks (fastapi-users, bare FastAPI, pycasbin) live in their own environment,
# installed from their own lock (requirements/bench-peers.in -> .lock, with hashes).
.venv-bench/.installed: requirements/bench-peers.lock
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install -q --require-hashes -r requirements/bench-peers.lock
	touch $@

## The suite and its peers side by side (docs/benchmarks.md); about 15 minutes on 2 cores.
## Writes bench/results/latest.json, the charts next to it and the table in docs/benchmarks.md.
bench: $(VENV)/.bench-installed .venv-bench/.installed
	@bash scripts/install_test_tools.sh wrk
	$(PY) -m bench

## Every case of `make bench`, shorter (under 3 minutes): a smoke test, it asserts nothing about speed.
bench-quick: $(VENV)/.bench-installed .venv-bench/.installed
	@bash scripts/install_test_tools.sh wrk
	$(PY) -m bench --quick

## Re-pin every dependency (with hashes) from pyproject.toml into requirements/*.lock.
lock:
	bash scripts/lock.sh

clean:
	rm -rf $(VENV) .venv-lock .data .pytest_cache .mypy_cache .ruff_cache

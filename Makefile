# Mochi Studio: `make run` to use it, `make test` to prove it. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python

# The first Python >= 3.12 found: on PATH, or installed by pyenv.
PYTHON_CANDIDATES := python3.13 python3.12 python3 \
	$(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) \
	$(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) \
	$(wildcard /usr/local/bin/python3.1[3-9]) $(wildcard /usr/bin/python3.1[3-9])
BASE_PYTHON ?= $(shell for p in $(PYTHON_CANDIDATES); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: help run test lint bench soak screenshots clean

help:
	@echo "make run    install, migrate and start the whole product on http://127.0.0.1:8000"
	@echo "make test   install the test tools and run lint, type checks and the test suite"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make soak   the production stack under load and faults, then its invariants (SOAK_MINUTES, SOAK_USERS)"
	@echo "make screenshots  refresh docs/screenshots from the browser tests"

$(PY):
	@test -n "$(BASE_PYTHON)" || { echo "Mochi Studio needs Python 3.12 or newer on PATH (or via pyenv)." >&2; exit 1; }
	$(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	@PY=$(PY) bash scripts/run-local.sh

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/hadolint Dockerfile
	$(PY) manage.py makemigrations --check --dry-run --settings=tests.settings

# Three test processes: much of the suite waits on sockets and subprocesses.
PYTEST_ARGS ?= -n 3
test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Benchmarks need PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/mochi_bench).
BENCHES := ledger pipeline pages api
bench: $(VENV)/.installed-dev
	@for name in $(BENCHES); do $(PY) -m bench.$$name || exit 1; done

# The production stack under load and injected faults for SOAK_MINUTES with SOAK_USERS
# customers, then the invariants; the report goes to soak-report/. Needs PostgreSQL
# (SOAK_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/mochi_soak, recreated)
# and Redis (SOAK_REDIS_URL, default redis://127.0.0.1:6379/13).
SOAK_MINUTES ?= 10
SOAK_USERS ?= 100
soak: $(VENV)/.installed-dev
	SOAK_MINUTES=$(SOAK_MINUTES) SOAK_USERS=$(SOAK_USERS) $(PY) -m soak

# The README's screenshots, taken by the browser tests as they walk through the product.
screenshots: $(VENV)/.installed-dev
	rm -rf docs/screenshots
	MOCHI_SCREENSHOTS=docs/screenshots MOCHI_REQUIRE_BROWSER=1 $(VENV)/bin/pytest -q -p no:xdist tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-artifacts staticfiles

# The two commands a newcomer runs (see README.md): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck docs bench bench-full clean install

$(BIN)/crm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/crm

install: $(BIN)/crm

demo: install
	$(BIN)/crm demo

test: install
	$(BIN)/ruff check src tests examples benchmarks docs/api.py
	$(BIN)/ruff format --check src tests examples benchmarks docs/api.py
	$(BIN)/mypy src
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests examples benchmarks docs/api.py
	$(BIN)/ruff format --check src tests examples benchmarks docs/api.py

typecheck: install
	$(BIN)/mypy src

# The API reference, generated from the docstrings by pdoc into build/api/index.html. A pdoc
# warning or a public name without a docstring fails it (tests/e2e/test_api_docs.py checks
# the same in `make test`).
docs: install
	$(BIN)/python docs/api.py build/api

# Benchmarks are run on demand and reported in docs/performance.md, never asserted in tests.
# `make bench` runs them all in under 10 minutes on 2 cores: projections on one history per
# backend grown to 10k, 100k and 1M events (PostgreSQL to 100k; at 1M only SQLite's bare read and
# one-process fold), measured from scratch in every run; the run log gives each part's seconds.
bench: install
	$(BIN)/python benchmarks/report.py

# Every projections measurement at 1M events on both backends (about half an hour more on 2 cores).
bench-full: install
	$(BIN)/python benchmarks/report.py --full

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

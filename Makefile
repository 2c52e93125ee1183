# Lead Run Actions — every command a developer or CI runs. `make help` lists them.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help install test test-fast lint typecheck up down status demo bench package openapi clean

help:
	@echo "make demo      run the sample lead run on the local stack and print receipts + funnel"
	@echo "make test      lint, type-check and run the whole test suite (starts what it needs)"
	@echo "make up/down   start/stop the local stack in the background (.leadrun/stack.env)"
	@echo "make bench     benchmark the pipeline against the stack's own ceiling"
	@echo "make package   build/<function>/: the exact upload of each function"
	@echo "make openapi   write docs/openapi.json from the request and answer models"

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy common functions sandbox leadrun infra/package.py

# Two workers, each handed the next test as it finishes one (docs/decisions/0017).
test: lint typecheck
	$(PY) -m pytest -n 2 --dist load

test-fast: install
	$(PY) -m pytest -m "not slow"

up: install
	$(PY) -m leadrun.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m leadrun.stack down; fi

status: install
	$(PY) -m leadrun.stack status

demo: install
	$(PY) -m leadrun.demo

bench: install
	$(PY) -m bench

package: install
	$(PY) infra/package.py --out build

# The document is generated, never edited: a test fails when it and the models disagree.
openapi: install
	$(PY) -m leadrun.openapi

clean: down
	rm -rf build .leadrun .pytest_cache .mypy_cache .ruff_cache

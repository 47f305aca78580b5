# CodeForge — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stamp is rebuilt whenever the dependency list changes.
STAMP := $(VENV)/.installed-dev

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv (if missing) and install CodeForge with its dev tools

.PHONY: run
run: install ## Serve on 127.0.0.1:8080 (env passes through: CODEFORGE_HTTP__PORT=9000 make run)
	$(BIN)/codeforge serve

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: format
format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: system-deps
system-deps: ## Install the system tools the tests use (bubblewrap), when missing
	sh scripts/install-test-system-deps.sh

.PHONY: test
test: install lint system-deps ## Lint, then the whole test suite against real services
	$(BIN)/pytest -m "not benchmark" tests

.PHONY: test-quick
test-quick: install ## Unit tests and in-memory contract suites (the inner loop)
	$(BIN)/pytest -m "unit or (contract and not integration)" tests

.PHONY: bench
bench: install ## Benchmarks under tests/benchmarks (figures go to docs/performance.md)
	$(BIN)/pytest -m benchmark tests/benchmarks -s

.PHONY: clean
clean: ## Remove caches (keeps .venv and the data dir)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

# One entry point for people and CI. `make run` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
ARGS ?=
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

ENV ?= local
.PHONY: help install run test test-unit test-integration lint format bench lock clean deploy worker image image-test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# uv installs the pinned set in seconds where pip takes minutes; both read the same requirements files.
# Bytecode is compiled at install time: with PYTHONDONTWRITEBYTECODE set (as on CI) every run would otherwise
# recompile Prefect and GX from source, about 10 s of CPU per process.
# The Faker twin is installed beside the pipeline for `make run` and the tests; the image has only the pipeline.
$(RUNTIME_STAMP): requirements.txt requirements-twin.txt pyproject.toml twin/pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt -r requirements-twin.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . -e twin
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt -r requirements-twin.txt -r requirements-dev.txt
	@touch $@

install: $(DEV_STAMP) ## create .venv with runtime and dev dependencies (pinned)

run: $(RUNTIME_STAMP) ## install, then run the whole pipeline offline against the bundled Faker twin
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/quickstart.sh $(ARGS)

test: $(DEV_STAMP) ## install, then lint and run every test (unit and integration, real local servers)
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(ARGS)

test-unit: $(DEV_STAMP) ## only the fast unit tests
	$(BIN)/python -m pytest tests/unit $(ARGS)

test-integration: $(DEV_STAMP) ## only the integration tests
	$(BIN)/python -m pytest tests/integration $(ARGS)

lint: $(DEV_STAMP) ## ruff, mypy, sqlfluff and hadolint
	$(BIN)/ruff check flows twin tests bench deployments
	$(BIN)/ruff format --check flows twin tests bench deployments
	$(BIN)/mypy flows twin/faker_twin
	$(BIN)/sqlfluff lint sql
	$(BIN)/hadolint Dockerfile

format: $(DEV_STAMP) ## apply ruff and sqlfluff fixes
	$(BIN)/ruff check --fix flows twin tests bench deployments
	$(BIN)/ruff format flows twin tests bench deployments
	$(BIN)/sqlfluff fix sql

bench: $(DEV_STAMP) ## benchmark 30k and 1M persons against the twin, with the naive baseline (prints figures)
	$(BIN)/python -m bench.run $(ARGS)

deploy: $(RUNTIME_STAMP) ## create the work pool if missing and deploy prefect.yaml (ENV=local|dev|prod; needs PREFECT_API_URL)
	$(BIN)/python deployments/deploy.py --env $(ENV)

worker: $(RUNTIME_STAMP) ## start a process worker on the local pool (needs PREFECT_API_URL)
	$(BIN)/prefect worker start --pool persons-local --type process

image: ## build the image with buildah (no Docker engine needed)
	scripts/image.sh build

image-test: $(RUNTIME_STAMP) ## build the image and run the pipeline inside it against the twin (2,000 persons)
	TWIN=$(CURDIR)/$(BIN)/faker-twin scripts/image.sh test

lock: | $(BIN)/python ## re-pin requirements*.txt from requirements*.in
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 requirements.in -o requirements.txt
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 requirements-twin.in -o requirements-twin.txt

clean: ## remove the virtual environment, local data and caches
	rm -rf $(VENV) data .prefect-home .pytest_cache .mypy_cache .ruff_cache

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
# Two pytest workers, one test file each at a time (module fixtures stay shared): in a serial run the second core
# idles while most integration tests wait on one process (measured: 21 min serial, 15.5 min with 2 workers).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
IMAGE_TAG ?=
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
INFRA_OUT := deployments/infra/out
INFRA_STAMP := $(INFRA_OUT)/.synthesized
INFRA_SOURCES := $(wildcard deployments/infra/*.py) deployments/work-pools/ecs.json
WORKFLOWS := $(wildcard .github/workflows/*.yml)
# The CDK's jsii runtime runs on this machine's Node.js 20 (end of life for jsii, still working): no banner.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
.PHONY: help install run server-status server-stop test test-unit test-integration test-platform lint lint-code lint-workflows lint-infra format bench lock vendor docs docs-serve \
	clean deploy undeploy deploy-plan worker image image-test infra infra-deploy infra-outputs smoke

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# uv installs the pinned set in seconds where pip takes minutes; both read the same requirements files.
# Bytecode is compiled at install time: with PYTHONDONTWRITEBYTECODE set (as on CI) every run would otherwise
# recompile Prefect and GX from source, about 10 s of CPU per process.
ifdef ACT
# Under act (the workflow tests) the caller's venv is reused as it is, like a restored cache: installing from
# act's copy of the checkout would point the venv's editable installs at that copy.
$(RUNTIME_STAMP) $(DEV_STAMP) $(CHECKOV_STAMP):
	@echo "install: under act, $(VENV) is used as it is"
else
# The Faker twin is installed beside the pipeline for `make run` and the tests; the image has only the pipeline.
$(RUNTIME_STAMP): requirements.txt requirements-twin.txt pyproject.toml twin/pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt -r requirements-twin.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . -e twin
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt -r requirements-twin.txt -r requirements-dev.txt
	@touch $@

# checkov pins libraries (cachetools<6, ...) that conflict with the runtime set: a venv of its own.
$(CHECKOV_STAMP): requirements-checkov.txt | $(BIN)/python
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	@touch $@
endif

install: $(DEV_STAMP) $(CHECKOV_STAMP) ## create .venv with runtime and dev dependencies (pinned)

run: $(RUNTIME_STAMP) ## install, then run the whole pipeline offline against the bundled Faker twin
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/quickstart.sh $(ARGS)

server-status: $(RUNTIME_STAMP) ## show the local Prefect server that runs start when PREFECT_API_URL is unset
	$(BIN)/persons-pipeline server status

server-stop: $(RUNTIME_STAMP) ## stop the local Prefect server (the next run starts it again)
	$(BIN)/persons-pipeline server stop

test: $(DEV_STAMP) ## install, then lint and run every test (unit and integration, real local servers)
	$(MAKE) --no-print-directory lint
	$(PYTEST) $(ARGS)

test-unit: $(DEV_STAMP) ## only the fast unit tests
	$(PYTEST) tests/unit $(ARGS)

test-integration: $(DEV_STAMP) ## only the integration tests
	$(PYTEST) tests/integration $(ARGS)

test-platform: $(DEV_STAMP) ## only the platform tests: the workflows under act, the CDK templates
	$(PYTEST) tests/platform $(ARGS)

lint: lint-code lint-workflows lint-infra ## all the checks below

lint-code: $(DEV_STAMP) ## ruff, mypy, the import contracts, sqlfluff (plain SQL; the dbt models with the jinja templater), hadolint
	$(BIN)/ruff check flows twin tests bench deployments docs/hooks
	$(BIN)/ruff format --check flows twin tests bench deployments docs/hooks
	$(BIN)/mypy flows twin/faker_twin docs/hooks
	$(BIN)/lint-imports --no-logo --no-cache
	$(BIN)/sqlfluff lint sql
	cd sql/dbt && $(CURDIR)/$(BIN)/sqlfluff lint models
	$(BIN)/hadolint Dockerfile

lint-workflows: | $(DEV_STAMP) ## actionlint, zizmor (offline) and the workflow JSON schema on .github/
	$(BIN)/actionlint $(WORKFLOWS)
	$(BIN)/zizmor --offline --quiet .github
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)

lint-infra: $(INFRA_STAMP) $(CHECKOV_STAMP) ## synthesize (with cdk-nag), then cfn-lint and checkov on the templates
	$(BIN)/cfn-lint $(INFRA_OUT)/*/*.template.json
	$(CHECKOV_VENV)/bin/checkov --config-file deployments/infra/checkov.yaml --directory $(INFRA_OUT)

# One synthesis (both stacks, one jsii runtime) serves make infra and make lint until a source changes.
$(INFRA_STAMP): $(INFRA_SOURCES) | $(DEV_STAMP)
	$(BIN)/python deployments/infra/app.py
	@touch $@

infra: $(INFRA_STAMP) ## synthesize the stacks: CloudFormation under deployments/infra/out/<env>/ (offline)
	@ls $(INFRA_OUT)/$(if $(filter dev prod,$(ENV)),$(ENV),*)/*.template.json

infra-deploy: $(INFRA_STAMP) ## create/update ENV's stack where the AWS environment points [IMAGE_TAG=<sha>]
	$(BIN)/python deployments/infra/deploy_stacks.py --env $(ENV) $(if $(IMAGE_TAG),--image-tag $(IMAGE_TAG))

infra-outputs: $(DEV_STAMP) ## write ENV's stack outputs to deployments/environments/<env>.stack.env
	$(BIN)/python deployments/infra/deploy_stacks.py --env $(ENV) --outputs-only

format: $(DEV_STAMP) ## apply ruff and sqlfluff fixes
	$(BIN)/ruff check --fix flows twin tests bench deployments
	$(BIN)/ruff format flows twin tests bench deployments
	$(BIN)/sqlfluff fix sql
	cd sql/dbt && $(CURDIR)/$(BIN)/sqlfluff fix models

bench: $(DEV_STAMP) ## benchmark 30k and 1M persons against the twin, with the naive baseline (prints figures)
	$(BIN)/python -m bench.run $(ARGS)

# deploy, undeploy and worker print their own few lines (no echo of the command); Prefect's output of a deploy
# goes to the log file its last line names.
deploy: $(RUNTIME_STAMP) ## create or update ENV's work pool, deploy prefect.yaml, build the models (ENV=local|dev|prod; needs PREFECT_API_URL)
	@$(BIN)/python deployments/deploy.py --env $(ENV)

undeploy: $(RUNTIME_STAMP) ## delete ENV's deployments and automations, and the local pool if make deploy created it
	@$(BIN)/python deployments/undeploy.py --env $(ENV)

deploy-plan: | $(RUNTIME_STAMP) ## print ENV's work pool and the values make deploy would use (no API call)
	$(BIN)/python deployments/deploy.py --env $(ENV) --dry-run

smoke: $(RUNTIME_STAMP) ## run the adhoc deployment for 3,000 persons and wait for it (needs PREFECT_API_URL)
	$(BIN)/prefect deployment run persons-pipeline/adhoc --param total=3000 --watch --watch-timeout 1800

worker: $(RUNTIME_STAMP) ## a process worker on ENV's pool; locally it also starts the Faker twin its runs use (needs PREFECT_API_URL)
	@$(BIN)/python deployments/worker.py --env $(ENV) $(ARGS)

image: ## build the image with buildah (no Docker engine needed)
	scripts/image.sh build

image-test: $(RUNTIME_STAMP) ## build the image and run the pipeline inside it against the twin (2,000 persons)
	TWIN=$(CURDIR)/$(BIN)/faker-twin scripts/image.sh test

# The data docs' CDN assets, committed under flows/gate/offline/vendor so that a run works offline; this target
# fetches them again from the npm registry and verifies them against flows/gate/offline/assets.lock.json
# (UPDATE=1 records the hashes of a new or changed entry of the lock instead of refusing it).
vendor: $(RUNTIME_STAMP) ## re-fetch the data docs' assets from npm and verify them against the lock
	$(BIN)/python scripts/vendor_docs_assets.py $(if $(UPDATE),--update)

# The docs site: mkdocs-material, strict (a missing page, link or anchor fails), no web fonts (renders offline).
# Material's notice about its successor is silenced: the build's output is the build's.
DOCS_ENV := NO_MKDOCS_2_WARNING=1
docs: $(DEV_STAMP) ## build the docs site from docs/ into site/ (offline, strict)
	$(DOCS_ENV) $(BIN)/mkdocs build --quiet --strict
	@echo "docs site: $(CURDIR)/site/index.html"

docs-serve: $(DEV_STAMP) ## serve the docs site on 127.0.0.1:8000 with live reload
	$(DOCS_ENV) $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

lock: | $(BIN)/python ## re-pin requirements*.txt from requirements*.in
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 requirements.in -o requirements.txt
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 requirements-twin.in -o requirements-twin.txt
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 requirements-checkov.in -o requirements-checkov.txt

clean: ## remove the virtual environment, local data and caches
	rm -rf $(VENV) data .prefect-home .pytest_cache .mypy_cache .ruff_cache $(INFRA_OUT) sql/dbt/target sql/dbt/logs site

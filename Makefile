# The README's commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv (from the dev extra, so its version is locked too) resolves and exports the lock;
# installs need only pip. `make lock UV=uv` uses another uv.
UV ?= $(BIN)/uv
# The requirement sets exported from uv.lock (README, "Dependencies and the lock file"):
# the file name, then the extras it holds. The images install one each; the venv installs dev.
REQUIREMENTS := api: worker:worker worker-gpu:worker-gpu dev:worker,dev
# Where `make requirements` writes them (lock-check writes them elsewhere, to compare).
REQ_DIR := requirements
# Local packages, installed editable and without dependencies after the locked install.
LOCAL_PACKAGES := .

.DEFAULT_GOAL := help
.PHONY: help install lock lock-check requirements models demo test lint typecheck format clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# Hashes make pip refuse any file but the locked one, and any package the lock does not list.
$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps $(addprefix -e ,$(LOCAL_PACKAGES))
	$(BIN)/python -m pip install --quiet --no-deps --config-settings editable_mode=compat -e clients/python/facesearch-client
	$(BIN)/python -m pip check
	touch $@

install: $(STAMP) ## Create the virtualenv from the lock (worker and dev extras) and install the project

# uv comes with the venv; a venv installed from a lock that is out of date is fine for that.
NEED_UV = @command -v $(UV) >/dev/null || $(MAKE) --no-print-directory install

lock: ## Re-resolve uv.lock from pyproject.toml and export requirements/*.txt (commit all)
	$(NEED_UV)
	$(UV) lock
	$(MAKE) --no-print-directory requirements

# One file per set: a fixed header (so that a copy made elsewhere compares equal), then uv's
# export with hashes, without the project and local packages (installed separately, editable).
requirements:
	$(NEED_UV)
	@mkdir -p $(REQ_DIR)
	@set -e; for spec in $(REQUIREMENTS); do \
	  name=$${spec%%:*}; extras=$${spec#*:}; \
	  { echo "# Generated from uv.lock by \`make lock\`: do not edit. Extras: $${extras:-none}."; \
	    $(UV) export --quiet --frozen --no-header --no-emit-project --no-emit-local \
	      $$(for e in $$(echo $$extras | tr , ' '); do printf -- '--extra %s ' $$e; done); \
	  } > $(REQ_DIR)/$$name.txt; \
	done

lock-check: ## Fail if uv.lock or requirements/*.txt do not match pyproject.toml
	$(NEED_UV)
	@$(UV) lock --check --quiet || { \
	  echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock and requirements/" >&2; \
	  exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT \
	  && $(MAKE) --no-print-directory requirements REQ_DIR="$$tmp" \
	  && diff -ru requirements "$$tmp" >&2 || { \
	  echo "requirements/ does not match uv.lock: run 'make lock' and commit requirements/" >&2; \
	  exit 1; }
	@echo "uv.lock and requirements/ match pyproject.toml"

models: $(STAMP) ## Download and verify the FaceNet weights (once; cached in MODEL_DIR)
	$(BIN)/facesearch models pull

demo: models ## Run the embedded end-to-end demo: ingest LFW, search, print the top 10
	$(BIN)/facesearch demo

lint: $(STAMP) ## ruff, and deptry: every import is declared, every declaration imported
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .

typecheck: $(STAMP) ## mypy
	$(BIN)/mypy

test: lock-check models lint typecheck ## Check the lock, lint, type-check and run every test (needs Postgres and Redis on 127.0.0.1)
	$(BIN)/pytest

.PHONY: client
client: $(STAMP) ## Regenerate the typed Python client (clients/python) from the OpenAPI document
	$(BIN)/python clients/python/generate.py

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtualenv and local data (not the cached weights)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

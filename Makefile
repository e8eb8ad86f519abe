# The README's commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install models demo test lint typecheck format clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP) ## Create the virtualenv and install the project with its dev tools

models: $(STAMP) ## Download and verify the FaceNet weights (once; cached in MODEL_DIR)
	$(BIN)/facesearch models pull

demo: models ## Run the embedded end-to-end demo: ingest LFW, search, print the top 10
	$(BIN)/facesearch demo

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy
	$(BIN)/mypy

test: models lint typecheck ## Lint, type-check and run every test (needs Postgres and Redis on 127.0.0.1)
	$(BIN)/pytest

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtualenv and local data (not the cached weights)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Set-up and everyday commands. Only Python 3.11+, make and git are needed: every other tool
# is installed into .venv from pyproject.toml's `dev` extra.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test check lint typecheck demo diagrams bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "statesock needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check statesock tests examples
	$(BIN)/ruff format --check statesock tests examples

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

demo: $(STAMP)
	$(BIN)/statesock demo

diagrams: $(STAMP)
	$(BIN)/statesock diagram --format mermaid -o diagrams/connection.mmd
	$(BIN)/statesock diagram --format dot -o diagrams/connection.dot
	$(BIN)/statesock diagram --format svg -o diagrams/connection.svg

bench: $(STAMP)
	$(BIN)/python -m tests.bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .hypothesis

# Two entry points on a fresh machine (Python >= 3.10): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-slow lint bench clean

$(BIN)/kmtl: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

## Train MMoE on the bundled synthetic data, print per-task metrics, export.
demo: $(BIN)/kmtl
	$(BIN)/kmtl train --model mmoe --epochs 3 --export saved_models/mmoe

## Lint, then the fast test suite.
test: $(BIN)/kmtl
	$(BIN)/ruff check kmtl tests benchmarks
	$(BIN)/python -m pytest -q

## The slow tests: training to a target AUC, notebooks, SavedModel CLI.
test-slow: $(BIN)/kmtl
	$(BIN)/python -m pytest -q -m slow

lint: $(BIN)/kmtl
	$(BIN)/ruff check kmtl tests benchmarks
	$(BIN)/ruff format --check kmtl tests benchmarks

bench: $(BIN)/kmtl
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info

# Two entry points on a fresh machine (Python >= 3.10): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-slow lint bench bench-deepctr clean

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

## DeepCTR 0.9.4 (tf_keras) in its own environment, for the side-by-side run.
.venv-deepctr/bin/python:
	$(PYTHON) -m venv .venv-deepctr
	.venv-deepctr/bin/python -m pip install --quiet --upgrade pip
	.venv-deepctr/bin/python -m pip install --quiet tensorflow==2.21.0 \
		tf_keras==2.21.0 deepctr==0.9.4

## kmtl beside DeepCTR on this machine, alternating, training and serving.
bench-deepctr: $(BIN)/kmtl .venv-deepctr/bin/python
	$(BIN)/python benchmarks/deepctr_side_by_side.py --serving

clean:
	rm -rf $(VENV) .venv-deepctr build *.egg-info

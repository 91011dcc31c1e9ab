# Set-up and everyday commands. Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: run test test-slow bench bench-gpu bench-envs clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[plots]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

## make run: a short real training run: FuPS, NoPS and AdaPS on Blind-particle Spread (quick preset, 4 seeds)
run: $(STAMP_RUN)
	$(PY) -m experiments.run --env bps --method fups nops adaps --preset quick --out results/make-run $(ARGS)

## make test: the test suite without the slow learning tests
test: $(STAMP_TEST)
	$(PYTEST) -q

## make test-slow: the learning tests and the slowest checks (minutes of CPU each)
test-slow: $(STAMP_TEST)
	$(PYTEST) -q -m slow

## make bench-envs: environment stepping speed against the original packages
bench-envs: $(STAMP_TEST)
	$(PY) -m experiments.bench_envs

## make bench: environment and training benchmarks (bench/results.{json,md}, docs/BENCHMARKS.md; about 18 min)
bench: $(STAMP_TEST)
	$(PY) -m experiments.bench $(ARGS)

## make bench-gpu: the GPU check (bench/gpu.sh; under 8 minutes on one H100/H200-class GPU)
bench-gpu: $(STAMP_TEST)
	PYTHON=$(PY) bench/gpu.sh $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# Set-up and everyday commands. Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
PYTEST := $(PY) -m pytest -p no:cacheprovider
# The paper-preset main runs, in the order of the README's table and the figures' panels.
PAPER_RUNS := $(addprefix docs/results/,bps-15a-3c-paper lbf-10x10-6p-3f-paper crware-2c-tiny-4ag-paper lbf-10x10-6p-3f-2s-paper)

.PHONY: run test test-slow bench bench-gpu bench-envs reproduce clean

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

## make reproduce: every paper-preset run of docs/RESULTS.md in order (many hours on a CPU); run it again to continue
RUN := $(PY) -m experiments.run
PAPER := --preset paper
reproduce: $(STAMP_RUN)
	$(RUN) --scenario bps-15a-3c $(PAPER) --out docs/results/bps-15a-3c-paper
	$(RUN) --scenario bps-30a-3c --preset quick --out docs/results/bps-30a-3c-quick
	$(RUN) --scenario lbf-10x10-6p-3f $(PAPER) --out docs/results/lbf-10x10-6p-3f-paper
	$(RUN) --scenario crware-2c-tiny-4ag $(PAPER) --out docs/results/crware-2c-tiny-4ag-paper
	$(RUN) --scenario lbf-10x10-6p-3f-2s $(PAPER) --out docs/results/lbf-10x10-6p-3f-2s-paper
	$(RUN) --scenario bps-15a-3c --method adaps $(PAPER) --set num_clusters=6 --out docs/results/bps-15a-3c-paper-k6
	$(RUN) --scenario lbf-10x10-6p-3f-2s --method adaps $(PAPER) --set num_clusters=3 --out docs/results/lbf-10x10-6p-3f-2s-paper-k3
	$(RUN) --scenario lbf-10x10-6p-3f-2s --method adaps $(PAPER) --set num_clusters=6 --out docs/results/lbf-10x10-6p-3f-2s-paper-k6
	$(RUN) --scenario bps-15a-3c --method adaps $(PAPER) --sweep mask_threshold=0.1,0.2,0.4,0.6 --out docs/results/bps-15a-3c-paper-lambda
	$(RUN) --scenario lbf-10x10-6p-3f-2s --method adaps $(PAPER) --sweep mask_threshold=0.1,0.2,0.4,0.6 --out docs/results/lbf-10x10-6p-3f-2s-paper-lambda
	$(PY) -m experiments.plot $(PAPER_RUNS) --out docs/results/paper-plots
	$(PY) -m experiments.report --ablation docs/results/bps-15a-3c-paper docs/results/bps-15a-3c-paper-lambda \
		docs/results/bps-15a-3c-paper-k6 docs/results/lbf-10x10-6p-3f-2s-paper docs/results/lbf-10x10-6p-3f-2s-paper-lambda \
		docs/results/lbf-10x10-6p-3f-2s-paper-k3 docs/results/lbf-10x10-6p-3f-2s-paper-k6 --out docs/results/ablation.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

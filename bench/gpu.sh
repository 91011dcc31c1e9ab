#!/bin/sh
# The GPU check: training throughput of every method on the three default scenarios at 4 seeds,
# FuPS at the batches that fill the GPU, a sweep in one program, the compiled pieces, and the
# paper sweep projected from the rates. Needs under 8 minutes on one H100/H200-class GPU and
# `pip install -e '.[dev]' 'jax[cuda12]'`; writes bench/gpu/results.{json,md}. Copy the table
# into docs/BENCHMARKS.md ("GPU").
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -c "import jax; d = jax.devices()[0]; assert d.platform == 'gpu', f'no GPU: {d}'; print(d.device_kind)"
exec timeout 480 "$PYTHON" -m experiments.bench --gpu --sections training,batch,sweep,profile --out bench/gpu "$@"

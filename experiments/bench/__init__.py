"""Training speed and scale of the compiled AdaPS trainer, against the references, in one run.

    python -m experiments.bench              # everything (`make bench`): bench/results.{json,md}, docs/BENCHMARKS.md
    python -m experiments.bench --quick      # a smoke run of every section (bench/quick/, docs untouched)
    python -m experiments.bench --gpu        # one large GPU, under 8 minutes (bench/gpu.sh): bench/gpu/
    python -m experiments.bench --sections training,agents --skip-envs
    python -m experiments.bench.time_left DIR METHOD   # how right a finished run's "time left" was

Sections (each a list of measurements in results.json; results.md shows them as tables):
- envs: the environment benchmark (`experiments.bench_envs`), which also times the original Python
  environments (rware, lbforaging, mpe2) under random actions: the bound of any trainer built on them.
- training: env-steps per second of `Trainer.train_chunk` (rollout, n-step returns, loss, gradient
  and Adam step: every update included) for the six methods on the three environments, at the
  paper's configuration (8 environments per seed, n-step 5, 4 seeds vmapped). The methods of one
  environment are compiled first and then timed chunk by chunk in turn, the order reversed every
  round, so that a change in the machine's load hits all of them alike; the median chunk counts.
  A minimal PureJaxRL-style FuPS A2C on jumanji's LevelBasedForaging (`JumanjiLbfA2C`) is timed in
  the LBF group, the same way.
- batch: FuPS at 8, 64, 256 and 1024 environments per seed (4 seeds).
- seeds: FuPS at 1, 4, 16 and 64 vmapped seeds (8 environments each): aggregate env-steps/s.
- agents: FuPS, AdaPS and NoPS from 15 to 3000 agents (BPS) and on crware-4c-large-64ag, each case
  in its own process: agent-steps/s, peak resident memory of that process, XLA's memory analysis
  of the compiled chunk and the trained parameter count.
- devices: FuPS with the 4 seeds on 1 CPU device or sharded over 2 (`--xla_force_host_platform_
  device_count=2`: one XLA CPU device per core), each in its own process.
- sweep: FuPS with four learning rates side by side in one compiled program against one value
  alone: env-steps per second per (value, seed).
- cli: whole processes from start to exit: the default command line (cold, and with a warm
  compilation cache) against the bare compiled training of the identical config.
- paper: one logging interval of the paper preset (FuPS, 4 seeds, with its evaluation episodes)
  against the training section's chunk, timed in turn.
- profile: milliseconds per A2C update of the compiled pieces (environment step alone, actor
  forward, the trainer's rollout with its in-place resets, loss, gradient, optimiser, whole update).

Modules: `harness` (settings, cases timed in turn, cases in their own process), `baseline` (the
jumanji A2C), `sections` (what is measured, `SECTIONS`), `report` (targets as data, Markdown,
docs/BENCHMARKS.md) and `main` (the command line, run by `__main__`).

Times are wall-clock on a machine that may be shared: ratios between cases measured in the same
group are more trustworthy than absolute numbers (see the load averages recorded with the results).
"""
from __future__ import annotations
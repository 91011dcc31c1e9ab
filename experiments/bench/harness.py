"""The measuring harness: settings, cases that train one chunk at a time, timing in turn, and
cases run in a process of their own (for peak memory and device counts)."""
from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from adaps_jax import diagnostics
from adaps_jax.config import Config
from adaps_jax.methods import METHOD_TABLE, METHODS, used_parameter_sets
from adaps_jax.trainer import jit_over_seeds, make_train
from experiments import bench_envs

ROOT = bench_envs.ROOT
ENVS = bench_envs.OUR_ENVS  # bps-15a-3c, crware-2c-tiny-4ag, lbf-10x10-6p-3f


@dataclass(frozen=True)
class Settings:
    """How much to measure. Chunk sizes are env-steps of all seeds together."""

    rounds: int = 11  # timed chunks per case (after one warm-up chunk)
    chunk_env_steps: int = 24_000
    big_chunk_env_steps: int = 60_000  # for the batch section's large batches
    pretrain_steps: int = 800  # AdaPS/SePS identity phase in the benchmark (not timed; reported)
    vae_epochs: int = 2
    kmeans_restarts: int = 3
    training_envs: tuple[str, ...] = ENVS
    training_methods: tuple[str, ...] = METHODS
    batch_envs: tuple[str, ...] = ENVS
    batches: tuple[int, ...] = (64, 256, 1024)  # besides 8, which the training section measures
    seed_envs: tuple[str, ...] = ("bps-15a-3c", "lbf-10x10-6p-3f")
    seeds: tuple[int, ...] = (1, 16, 64)  # besides 4
    agent_scenarios: tuple[str, ...] = ("bps-15a-3c", "bps-300a-3c", "bps-3000a-3c", "crware-4c-large-64ag")
    agent_methods: tuple[str, ...] = ("fups", "adaps", "nops")
    agent_rounds: int = 3
    agent_timeout_s: int = 300
    device_envs: tuple[str, ...] = ("lbf-10x10-6p-3f", "bps-15a-3c")
    envs_batches: tuple[int, ...] = (1, 256)
    envs_settings: bench_envs.Settings = bench_envs.FULL
    nops_30_scenario: str = "bps-30a-3c"
    profile_envs: tuple[str, ...] = ENVS
    profile_repeats: int = 20  # updates per timed call in the profile
    eval_episodes: int = 32  # the evaluation section's episodes (Config's default)
    sweep_envs: tuple[str, ...] = ("lbf-10x10-6p-3f",)
    sweep_values: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)  # learning rates trained side by side
    cli_scenario: str = "lbf-10x10-6p-3f"
    cli_steps: int = 1_000_000  # per seed, 4 seeds: the command line against the bare kernel
    cli_rounds: int = 2
    paper_envs: tuple[str, ...] = ENVS
    paper_fraction: float = 1.0  # of a paper-preset logging interval (the quick settings time a sliver)


FULL = Settings()
QUICK = Settings(
    rounds=2, chunk_env_steps=800, big_chunk_env_steps=2000, pretrain_steps=80, vae_epochs=1,
    kmeans_restarts=1, training_envs=("lbf-10x10-6p-3f",), training_methods=("fups", "adaps", "snp_ps"),
    batch_envs=("lbf-10x10-6p-3f",), batches=(64,), seed_envs=("lbf-10x10-6p-3f",), seeds=(1,),
    agent_scenarios=("bps-15a-3c", "bps-300a-3c"), agent_methods=("fups",), agent_rounds=1,
    agent_timeout_s=200, device_envs=("lbf-10x10-6p-3f",), envs_batches=(1,), envs_settings=bench_envs.QUICK,
    nops_30_scenario="", profile_envs=("lbf-10x10-6p-3f",), profile_repeats=2, sweep_values=(1e-4, 1e-3),
    cli_steps=20_000, cli_rounds=1, paper_envs=("lbf-10x10-6p-3f",), paper_fraction=0.005,
)
# One H100/H200-class GPU, under 8 minutes (bench/gpu.sh): every method at 4 seeds, the batches
# that fill the GPU, the sweep and the profile; no process-per-case sections.
GPU = Settings(
    rounds=3, chunk_env_steps=400_000, big_chunk_env_steps=4_000_000, batches=(1024, 4096), seed_envs=(),
    seeds=(), agent_scenarios=(), agent_methods=(), device_envs=(), envs_batches=(1,),
    envs_settings=bench_envs.QUICK, nops_30_scenario="", cli_steps=4_000_000, cli_rounds=1,
)


@dataclass
class Case:
    """Something that trains: `run()` does one chunk (blocking) and returns its metrics' finiteness."""

    info: dict[str, Any]
    run: Callable[[], bool]
    env_steps_per_chunk: int  # all seeds together
    num_agents: int
    seconds: list[float] = field(default_factory=list)
    finite: bool = True

    def time_once(self) -> None:
        start = time.perf_counter()
        finite = self.run()
        self.seconds.append(time.perf_counter() - start)
        self.finite = self.finite and finite


def interleave(cases: list[Case], rounds: int) -> list[dict[str, Any]]:
    """Times `rounds` chunks of every case in turn (forwards, then backwards, ...); medians."""
    for r in range(rounds):
        for case in cases if r % 2 == 0 else reversed(cases):
            case.time_once()
    return [result(case) for case in cases]


def result(case: Case) -> dict[str, Any]:
    rates = [case.env_steps_per_chunk / s for s in case.seconds]
    rate = statistics.median(rates)
    return {
        **case.info, "num_agents": case.num_agents,
        "env_steps_per_s": rate, "agent_steps_per_s": rate * case.num_agents,
        "us_per_agent_step": 1e6 / (rate * case.num_agents),
        "runs_env_steps_per_s": rates, "env_steps_per_chunk": case.env_steps_per_chunk,
        "finite": case.finite,
    }


def paired_ratio(row: dict, reference: dict) -> float:
    """Median over rounds of row's rate / reference's rate in the same round. Cases of one group are
    timed in turn, so each round's pair saw nearly the same machine load: steadier than a ratio of
    medians when the load drifts."""
    return statistics.median(a / b for a, b in zip(row["runs_env_steps_per_s"], reference["runs_env_steps_per_s"]))


def bench_config(scenario: str, method: str, num_envs: int, num_seeds: int, chunk_env_steps: int,
                 settings: Settings, **changes) -> Config:
    """A config whose `train_chunk` is about `chunk_env_steps` env-steps of all seeds (one chunk;
    AdaPS and SePS pretrain in a first chunk). Evaluation is off unless `changes` sets it: the
    training throughput is measured on its own, the evaluation's cost in its own section."""
    identity_phase = METHOD_TABLE[method].identity_phase
    fields = dict(scenario=scenario, method=method, num_envs=num_envs, num_seeds=num_seeds,
                  num_logs=2 if identity_phase else 1, eval_episodes=0,
                  pretrain_steps=settings.pretrain_steps, vae_epochs=settings.vae_epochs,
                  kmeans_restarts=settings.kmeans_restarts)
    base = Config(**{**fields, **changes})
    per_update = base.steps_per_update
    updates = max(1, round(chunk_env_steps / (per_update * num_seeds)))
    pretrain = -(-base.pretrain_steps // per_update) if identity_phase else 0
    return base.replace(total_steps=(pretrain + updates) * per_update)


def training_case(config: Config, extra: dict | None = None, sweep: dict | None = None) -> Case:
    """Compiles init and train_chunk (jit over vmapped seeds, as `experiments.run` does), runs init
    and one warm-up chunk; the case then times chunks. `sweep` ({field: values}) trains every value
    side by side in the one program, as `experiments.run --sweep` does."""
    from experiments.description import Variant, sweep_grid
    from experiments.training import variant_hparams, variant_keys

    trainer = make_train(config)
    variants = [Variant("", config.method, values) for values in sweep_grid(sweep or {})]
    keys = variant_keys(config.seed, config.num_seeds, len(variants))
    hparams = variant_hparams(config, variants, config.num_seeds, keys)
    start = time.perf_counter()
    init = jit_over_seeds(trainer.init, keys)
    state = init(keys) if hparams is None else init(keys, hparams)
    if trainer.has_identity_phase:
        state, _ = jit_over_seeds(trainer.pretrain_chunk_then_identify, keys)(state)
    state = jax.block_until_ready(state)
    init_s = time.perf_counter() - start  # compile + run (with the identity phase for AdaPS, SePS)
    chunk = jit_over_seeds(trainer.train_chunk, keys, donate=True)
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(chunk(state))
    first_chunk_s = time.perf_counter() - start  # compile + one chunk
    holder = {"state": state}

    def run() -> bool:
        holder["state"], m = jax.block_until_ready(chunk(holder["state"]))
        return bool(np.all(np.asarray(m.first_nonfinite_update) < 0))

    env = trainer.env
    clusters = int(np.max(np.asarray(state.plan.num_clusters)))
    per_set = diagnostics.parameters_per_set(trainer.network)
    sets = used_parameter_sets(METHOD_TABLE[config.method], env.num_agents, clusters)
    info = {
        "scenario": config.scenario, "method": config.method, "num_envs": config.num_envs,
        "num_seeds": config.num_seeds, "n_steps": config.n_steps, "updates_per_chunk": config.updates_per_log,
        "pretrain_steps": config.pretrain_updates * config.steps_per_update, "init_s": init_s,
        "first_chunk_s": first_chunk_s, "params_per_set": per_set, "param_sets": sets,
        "params": per_set * sets, "clusters": clusters, **(extra or {}),
    }
    holder["chunk"], holder["trainer"] = chunk, trainer
    info["sweep_values"] = len(variants)
    rows = len(variants) * config.num_seeds
    case = Case(info, run, rows * config.updates_per_log * config.steps_per_update, env.num_agents)
    case.holder = holder  # type: ignore[attr-defined]
    return case



def peak_memory_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM belongs to the process's own memory map;
    `ru_maxrss` would also count the parent's peak, which a child started by fork inherits."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_call(fn, *args, repeats: int = 5, min_s: float = 0.2) -> float:
    """Median seconds of one call of a compiled function (after a warm-up call)."""
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    calls = max(1, math.ceil(min_s / max(time.perf_counter() - start, 1e-6)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def run_case_here(spec: dict) -> dict:
    """One case in this process (for `--case`): the measurement, peak memory and compiled sizes."""
    settings = QUICK if spec.get("quick") else FULL
    if spec.get("baseline"):  # the process's memory with JAX started and nothing trained
        jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.ones(3)))
        return {"maxrss_mb": peak_memory_mb()}
    changes = {}
    if METHOD_TABLE[spec["method"]].identity_phase:
        changes = {"pretrain_steps": spec.get("pretrain_steps", settings.pretrain_steps)}
    config = bench_config(spec["scenario"], spec["method"], spec.get("num_envs", 8), spec.get("num_seeds", 4),
                          spec.get("chunk_env_steps", settings.chunk_env_steps), settings, **changes)
    case = training_case(config)
    r = interleave([case], spec.get("rounds", settings.agent_rounds))[0]
    memory = case.holder["chunk"].lower(case.holder["state"]).compile().memory_analysis()  # type: ignore[attr-defined]
    if memory is not None:
        r["compiled_mb"] = {k: getattr(memory, f"{k}_size_in_bytes") / 2**20
                            for k in ("argument", "output", "temp", "alias", "generated_code")}
    r["maxrss_mb"] = peak_memory_mb()
    r["devices"] = len(jax.devices())
    r["state_devices"] = len(jax.tree.leaves(case.holder["state"])[0].sharding.device_set)  # type: ignore[attr-defined]
    return r


def run_case_subprocess(spec: dict, timeout_s: int, xla_flags: str = "") -> dict:
    env = dict(os.environ)
    if xla_flags:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + xla_flags).strip()
    start = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "experiments.bench", "--case", json.dumps(spec)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {**spec, "status": f"not finished within {timeout_s} s", "wall_s": timeout_s}
    wall = time.perf_counter() - start
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1][:300]
        return {**spec, "status": f"failed (exit {out.returncode}): {tail}", "wall_s": wall}
    return {**spec, **json.loads(out.stdout.strip().splitlines()[-1]), "status": "ok", "wall_s": wall}


def num_agents_of(scenario: str) -> int:
    import envs

    return envs.make(scenario).num_agents

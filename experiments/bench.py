"""Training speed and scale of the compiled AdaPS trainer, against the references, in one run.

    python -m experiments.bench              # everything (`make bench`): bench/results.{json,md}, docs/BENCHMARKS.md
    python -m experiments.bench --quick      # a smoke run of every section (bench/quick/, docs untouched)
    python -m experiments.bench --sections training,agents --skip-envs

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
- profile: milliseconds per A2C update of the compiled pieces (environment step with and without
  the in-place reset, actor forward, rollout, loss, gradient, optimiser, whole update).

Times are wall-clock on a machine that may be shared: ratios between cases measured in the same
group are more trustworthy than absolute numbers (see the load averages recorded with the results).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaps_jax import diagnostics
from adaps_jax.a2c import a2c_loss
from adaps_jax.config import Config
from adaps_jax.methods import METHOD_TABLE, METHODS, used_parameter_sets
from adaps_jax.networks import orthogonal
from adaps_jax.trainer import Trainer, jit_over_seeds, make_train, seed_keys
from experiments import bench_envs
from experiments.presets import PRESETS, env_family
from experiments.cli import OneLineArgumentParser

ROOT = bench_envs.ROOT
ENVS = bench_envs.OUR_ENVS  # bps-15a-3c, crware-2c-tiny-4ag, lbf-10x10-6p-3f
SECTIONS = ("envs", "training", "evaluation", "batch", "seeds", "agents", "devices", "profile")
# The environments a trainer on the original Python packages would step (names from bench_envs).
PYTHON_BOUND = {
    "bps-15a-3c": "mpe2 spread-15 (as BPS fork)",
    "crware-2c-tiny-4ag": bench_envs.RwareRef.name,
    "lbf-10x10-6p-3f": bench_envs.LbforagingRef.name,
}
JUMANJI_A2C = "jumanji LBF minimal A2C (FuPS)"


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


FULL = Settings()
QUICK = Settings(
    rounds=2, chunk_env_steps=800, big_chunk_env_steps=2000, pretrain_steps=80, vae_epochs=1,
    kmeans_restarts=1, training_envs=("lbf-10x10-6p-3f",), training_methods=("fups", "adaps", "snp_ps"),
    batch_envs=("lbf-10x10-6p-3f",), batches=(64,), seed_envs=("lbf-10x10-6p-3f",), seeds=(1,),
    agent_scenarios=("bps-15a-3c", "bps-300a-3c"), agent_methods=("fups",), agent_rounds=1,
    agent_timeout_s=200, device_envs=("lbf-10x10-6p-3f",), envs_batches=(1,), envs_settings=bench_envs.QUICK,
    nops_30_scenario="", profile_envs=("lbf-10x10-6p-3f",), profile_repeats=2,
)


# ----------------------------------------------------------------------------------------------
# Timing: cases that run one chunk at a time, interleaved


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


def training_case(config: Config, extra: dict | None = None) -> Case:
    """Compiles init and train_chunk (jit over vmapped seeds, as `experiments.run` does), runs init
    and one warm-up chunk; the case then times chunks."""
    trainer = make_train(config)
    keys = seed_keys(config.seed, config.num_seeds)
    start = time.perf_counter()
    state = jit_over_seeds(trainer.init, keys)(keys)
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
    case = Case(info, run, config.num_seeds * config.updates_per_log * config.steps_per_update, env.num_agents)
    case.holder = holder  # type: ignore[attr-defined]
    return case


# ----------------------------------------------------------------------------------------------
# The baseline: a minimal PureJaxRL-style A2C on jumanji's LevelBasedForaging


class JumanjiLbfA2C:
    """FuPS A2C in the PureJaxRL style on jumanji's LevelBasedForaging (10x10, 6 agents, 3 food).

    One shared actor and one shared critic (64-64 ReLU, orthogonal init, actor head 0.01), the
    agents' 27-number views as inputs, invalid actions masked; `num_envs` copies stepped through
    jumanji's `VmapAutoResetWrapper` (its standard auto-reset); n-step returns cut at episode ends
    (no truncation bootstrap: the minimal version), entropy 0.01, value loss 0.5, Adam 3e-4 with
    a global gradient-norm clip of 0.5; losses averaged over steps and copies and summed over agents.
    Seeds are vmapped. Everything is one jitted `lax.scan` of updates, like our `train_chunk`.
    """

    def __init__(self, num_envs: int = 8, n_steps: int = 5, hidden: int = 64, gamma: float = 0.99):
        import flax.linen as nn
        from jumanji.wrappers import VmapAutoResetWrapper

        self.env = VmapAutoResetWrapper(bench_envs.jumanji_lbf())
        self.num_envs, self.n_steps, self.gamma = num_envs, n_steps, gamma
        self.num_agents = int(np.asarray(self.env.action_spec.num_values).shape[0])

        class MLP(nn.Module):
            out: int
            gain: float

            @nn.compact
            def __call__(self, x):
                # Our orthogonal init: flax's, with the same values, but one QR per matrix under vmap.
                # flax's batched QR deadlocked this program with the seeds sharded 2 per CPU device
                # (the jaxlib 0.10.2 hang described in adaps_jax/networks.py).
                init = orthogonal
                x = nn.relu(nn.Dense(hidden, kernel_init=init(np.sqrt(2)))(x))
                x = nn.relu(nn.Dense(hidden, kernel_init=init(np.sqrt(2)))(x))
                return nn.Dense(self.out, kernel_init=init(self.gain))(x)

        self.actor, self.critic = MLP(6, 0.01), MLP(1, 1.0)
        self.optimizer = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(3e-4, eps=1e-5))

    def init(self, key):
        env_key, actor_key, critic_key, key = jax.random.split(key, 4)
        states, timestep = self.env.reset(jax.random.split(env_key, self.num_envs))
        dummy = jnp.zeros((1, 27))
        params = {"actor": self.actor.init(actor_key, dummy), "critic": self.critic.init(critic_key, dummy)}
        return params, self.optimizer.init(params), states, timestep, key

    def train_chunk(self, carry, updates: int):
        actor, critic, env, gamma = self.actor, self.critic, self.env, self.gamma

        def update(carry, _):
            params, opt_state, states, timestep, key = carry

            def step(c, _):
                states, timestep, key = c
                key, act_key = jax.random.split(key)
                obs = timestep.observation
                x = obs.agents_view.astype(jnp.float32)
                logits = jnp.where(obs.action_mask, actor.apply(params["actor"], x), -1e9)
                action = jax.random.categorical(act_key, logits)
                states, next_timestep = env.step(states, action)
                return (states, next_timestep, key), (x, obs.action_mask, action, next_timestep.reward,
                                                      next_timestep.last())

            (states, timestep, key), (x, mask, action, reward, done) = jax.lax.scan(
                step, (states, timestep, key), None, self.n_steps)
            last_value = critic.apply(params["critic"], timestep.observation.agents_view.astype(jnp.float32))[..., 0]

            def loss(p):
                logits = jnp.where(mask, actor.apply(p["actor"], x), -1e9)
                value = critic.apply(p["critic"], x)[..., 0]

                def back(g, t):
                    r, d = t
                    g = r + gamma * jnp.where(d[:, None], 0.0, g)
                    return g, g

                _, returns = jax.lax.scan(back, jax.lax.stop_gradient(last_value), (reward, done), reverse=True)
                advantage = returns - value
                log_probs = jax.nn.log_softmax(logits)
                log_prob = jnp.take_along_axis(log_probs, action[..., None], -1)[..., 0]
                entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, -1)
                per_agent = lambda v: jnp.sum(jnp.mean(v, axis=(0, 1)))  # noqa: E731
                return (per_agent(-jax.lax.stop_gradient(advantage) * log_prob) + 0.5 * per_agent(advantage**2)
                        - 0.01 * per_agent(entropy))

            value, grads = jax.value_and_grad(loss)(params)
            updates_, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates_), opt_state, states, timestep, key), value

        carry, losses = jax.lax.scan(update, carry, None, updates)
        return carry, losses


def jumanji_case(num_envs: int, num_seeds: int, chunk_env_steps: int, n_steps: int = 5) -> Case:
    a2c = JumanjiLbfA2C(num_envs=num_envs, n_steps=n_steps)
    updates = max(1, round(chunk_env_steps / (num_envs * n_steps * num_seeds)))
    keys = seed_keys(0, num_seeds)  # its seeds are sharded over the CPU devices like ours
    start = time.perf_counter()
    carry = jax.block_until_ready(jit_over_seeds(a2c.init, keys)(keys))
    init_s = time.perf_counter() - start
    chunk = jit_over_seeds(lambda c: a2c.train_chunk(c, updates), keys, donate=True)
    start = time.perf_counter()
    carry, _ = jax.block_until_ready(chunk(carry))
    first_chunk_s = time.perf_counter() - start
    holder = {"carry": carry}

    def run() -> bool:
        holder["carry"], losses = jax.block_until_ready(chunk(holder["carry"]))
        return bool(np.all(np.isfinite(np.asarray(losses))))

    info = {"scenario": "jumanji LevelBasedForaging 10x10-6p-3f", "method": JUMANJI_A2C, "num_envs": num_envs,
            "num_seeds": num_seeds, "n_steps": n_steps, "updates_per_chunk": updates, "init_s": init_s,
            "first_chunk_s": first_chunk_s}
    return Case(info, run, num_seeds * updates * num_envs * n_steps, a2c.num_agents)


# ----------------------------------------------------------------------------------------------
# Sections


def section_training(settings: Settings, log) -> list[dict]:
    """All six methods per environment at the paper's configuration, plus the jumanji baseline
    (LBF) and NoPS/FuPS at 30 agents."""
    out = []
    groups = [(scenario, list(settings.training_methods)) for scenario in settings.training_envs]
    if settings.nops_30_scenario:
        groups.append((settings.nops_30_scenario, ["fups", "nops"]))
    for scenario, methods in groups:
        cases = []
        for method in methods:
            config = bench_config(scenario, method, 8, 4, settings.chunk_env_steps, settings)
            cases.append(training_case(config))
            log(f"  compiled {scenario} {method}: init {cases[-1].info['init_s']:.1f} s, "
                f"first chunk {cases[-1].info['first_chunk_s']:.1f} s")
        if scenario == "lbf-10x10-6p-3f":
            cases.append(jumanji_case(8, 4, settings.chunk_env_steps))
            log(f"  compiled {JUMANJI_A2C}: first chunk {cases[-1].info['first_chunk_s']:.1f} s")
        for r in interleave(cases, settings.rounds):
            r["group"] = scenario
            out.append(r)
            log(f"  {r['scenario']:<40} {r['method']:<30} {r['env_steps_per_s']:>10,.0f} env-steps/s")
        del cases
    return out


def section_evaluation(settings: Settings, log) -> list[dict]:
    """FuPS with and without the evaluation episodes (32 greedy + 32 sampled per seed and logging
    point), each chunk one logging interval of the quick preset: the evaluation's share of a run."""
    out = []
    for scenario in settings.training_envs:
        preset = PRESETS["quick"][env_family(scenario)]
        interval = preset["total_steps"] // preset["num_logs"] * 4  # env-steps of 4 seeds per logging point
        cases = [training_case(bench_config(scenario, "fups", 8, 4, interval, settings, eval_episodes=episodes),
                               {"eval_episodes": episodes})
                 for episodes in (0, settings.eval_episodes)]
        for r in interleave(cases, max(2, settings.rounds // 2)):
            r["group"] = f"evaluation {scenario}"
            out.append(r)
            log(f"  {scenario:<22} fups eval_episodes={r['eval_episodes']:<3} {r['env_steps_per_s']:>10,.0f} env-steps/s")
    return out


def fups_sweep(settings: Settings, log, scenarios: tuple[str, ...], configs, label) -> list[dict]:
    """FuPS at several sizes per environment (`configs(scenario)`), the sizes of one environment
    timed in turn; `label(result)` names the size in the log."""
    out = []
    for scenario in scenarios:
        cases = [training_case(config) for config in configs(scenario)]
        for r in interleave(cases, max(2, settings.rounds // 2)):
            out.append(r)
            log(f"  {scenario:<22} fups {label(r)} {r['env_steps_per_s']:>10,.0f} env-steps/s")
    return out


def section_batch(settings: Settings, log) -> list[dict]:
    """FuPS with more environments per seed (4 seeds); 8 per seed is in the training section."""
    return fups_sweep(
        settings, log, settings.batch_envs,
        lambda scenario: [bench_config(scenario, "fups", n, 4, settings.big_chunk_env_steps, settings)
                          for n in settings.batches],
        lambda r: f"E={r['num_envs']:<5}")


def section_seeds(settings: Settings, log) -> list[dict]:
    """FuPS with other numbers of vmapped seeds (8 environments each); 4 seeds is in the training section."""
    return fups_sweep(
        settings, log, settings.seed_envs,
        lambda scenario: [bench_config(scenario, "fups", 8, s, max(settings.chunk_env_steps, 8 * 5 * s * 2), settings)
                          for s in settings.seeds],
        lambda r: f"seeds={r['num_seeds']:<4}")


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


def section_agents(settings: Settings, log, quick: bool) -> list[dict]:
    out = [{**run_case_subprocess({"baseline": True}, 120), "scenario": "(JAX started, nothing trained)"}]
    log(f"  process baseline: {out[0].get('maxrss_mb', float('nan')):.0f} MB")
    for scenario in settings.agent_scenarios:
        for method in settings.agent_methods:
            n = bench_envs_num_agents(scenario)
            # Big worlds: one update per chunk; AdaPS's identity phase shortened to 2 updates.
            chunk = settings.chunk_env_steps if n <= 64 else 8 * 5 * 4
            spec = {"scenario": scenario, "method": method, "num_envs": 8, "num_seeds": 4, "quick": quick,
                    "chunk_env_steps": chunk, "rounds": settings.agent_rounds}
            if METHOD_TABLE[method].identity_phase:
                spec["pretrain_steps"] = settings.pretrain_steps if n <= 64 else 8 * 5 * 2
            r = run_case_subprocess(spec, settings.agent_timeout_s)
            out.append(r)
            if r["status"] == "ok":
                log(f"  {scenario:<22} {method:<6} {r['agent_steps_per_s']:>12,.0f} agent-steps/s "
                    f"{r['us_per_agent_step']:.3f} us/agent-step  peak {r['maxrss_mb']:,.0f} MB  "
                    f"params {r['params']:,}")
            else:
                log(f"  {scenario:<22} {method:<6} {r['status']}")
    return out


def bench_envs_num_agents(scenario: str) -> int:
    import envs

    return envs.make(scenario).num_agents


def section_devices(settings: Settings, log, quick: bool) -> list[dict]:
    out = []
    for scenario in settings.device_envs:
        for devices in (1, 2):
            flags = f"--xla_force_host_platform_device_count={devices}"
            spec = {"scenario": scenario, "method": "fups", "num_envs": 8, "num_seeds": 4, "quick": quick,
                    "rounds": settings.rounds}
            r = run_case_subprocess(spec, 300, flags)
            out.append(r)
            if r["status"] == "ok":
                log(f"  {scenario:<22} fups devices={r['devices']} (state on {r['state_devices']}) "
                    f"{r['env_steps_per_s']:>10,.0f} env-steps/s")
            else:
                log(f"  {scenario:<22} fups devices={devices}: {r['status']}")
    return out


# ---- profile: the compiled pieces of one update ------------------------------------------------


def _time_call(fn, *args, repeats: int = 5, min_s: float = 0.2) -> float:
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


def profile_pieces(scenario: str, method: str, settings: Settings, num_envs: int = 8, num_seeds: int = 4) -> dict:
    """Milliseconds per A2C update (all seeds) of each compiled piece, each run `U` times in a scan.

    Each piece's inputs are nudged by the scan's carry so that XLA cannot hoist the work out of the
    loop, and its outputs are reduced into the carry so that nothing is dead code.
    """
    config = bench_config(scenario, method, num_envs, num_seeds, 1, settings)
    trainer: Trainer = make_train(config)
    env, net, T, E, U = trainer.env, trainer.network, config.n_steps, num_envs, settings.profile_repeats
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    _, rollout, _ = jax.jit(jax.vmap(lambda s: trainer._rollout(net, s.params, s)))(state)

    def repeated(piece):  # piece(params, state, rollout) -> scalar
        def per_seed(state, rollout):
            def body(c, _):
                params = jax.tree.map(lambda p: p + c * 1e-12, state.params)
                return c + 1e-12 * piece(params, state, rollout), None
            return jax.lax.scan(body, jnp.zeros(()), None, U)[0]
        return jax.jit(jax.vmap(per_seed))

    def loss(p, s, r):
        return a2c_loss(p, net, s.plan, r, config)[0]

    def grad(p, s, r):
        return sum(jnp.sum(g) for g in jax.tree.leaves(jax.grad(loss)(p, s, r)))

    def optimise(p, s, r):
        updates, _ = trainer.optimizer.update(p, s.opt_state, p)
        return sum(jnp.sum(u) for u in jax.tree.leaves(updates))

    def actor_forward(p, s, r):
        return jnp.sum(net.logits(p, s.plan, r.obs))

    def env_steps(reset: bool):
        def per_seed(state, rollout):
            def body(c, _):
                env_state, key, acc = c
                key, act_key, reset_key = jax.random.split(key, 3)
                action = jax.random.randint(act_key, (E, env.num_agents), 0, env.num_actions)
                env_state, ts = jax.vmap(env.step)(env_state, action)
                view = ts.observation.agents_view
                if reset:
                    fresh, fresh_ts = jax.vmap(env.reset)(jax.random.split(reset_key, E))
                    done = ts.last()
                    pick = lambda n, o: jnp.where(done.reshape((-1,) + (1,) * (o.ndim - 1)), n, o)  # noqa: E731
                    env_state = jax.tree.map(pick, fresh, env_state)
                    view = pick(fresh_ts.observation.agents_view, view)
                return (env_state, key, acc + jnp.sum(view) + jnp.sum(ts.reward)), None
            return jax.lax.scan(body, (state.env_state, state.key, jnp.zeros(())), None, U * T)[0][2]
        return jax.jit(jax.vmap(per_seed))

    def loop(step):
        def per_seed(state):
            return jax.lax.scan(lambda s, _: (step(s), None), state, None, U)[0]
        return jax.jit(jax.vmap(per_seed))

    rollout_only = loop(lambda s: trainer._rollout(net, s.params, s)[0])
    update = loop(lambda s: trainer._update(net, s)[0])
    pieces = {
        "env step": (env_steps(False), (state, rollout)),
        "env step + reset": (env_steps(True), (state, rollout)),
        "actor forward (T steps)": (repeated(actor_forward), (state, rollout)),
        "rollout": (rollout_only, (state,)),
        "loss forward": (repeated(loss), (state, rollout)),
        "loss + gradient": (repeated(grad), (state, rollout)),
        "optimiser": (repeated(optimise), (state, rollout)),
        "whole update": (update, (state,)),
    }
    ms = {name: 1e3 * _time_call(fn, *args) / U for name, (fn, args) in pieces.items()}
    return {"scenario": scenario, "method": method, "num_envs": num_envs, "num_seeds": num_seeds,
            "ms_per_update": ms,
            "env_steps_per_s_whole_update": num_seeds * num_envs * T / (ms["whole update"] / 1e3)}


def section_profile(settings: Settings, log) -> list[dict]:
    out = []
    cases = [(s, "fups") for s in settings.profile_envs]
    if settings.nops_30_scenario:
        cases.append((settings.nops_30_scenario, "nops"))
    for scenario, method in cases:
        r = profile_pieces(scenario, method, settings)
        out.append(r)
        log(f"  {scenario:<22} {method:<6} " + "  ".join(f"{k} {v:.2f}" for k, v in r["ms_per_update"].items()))
    return out


# ----------------------------------------------------------------------------------------------
# Ratios against the targets


def _find(rows, **match):
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def python_bounds(envs_report: dict | None) -> dict[str, dict]:
    """Per environment: the fastest Python reference rate over the batches measured (the bound)."""
    if not envs_report:
        return {}
    out = {}
    for scenario, ref in PYTHON_BOUND.items():
        rates = [m["env_steps_per_s"] for m in envs_report["measurements"] if m["env"] == ref]
        if rates:
            out[scenario] = {"reference": ref, "env_steps_per_s": max(rates)}
    return out


def targets(report: dict) -> dict[str, Any]:
    training = report.get("training") or []
    t: dict[str, Any] = {}
    bounds = python_bounds(report.get("envs"))
    for scenario in ENVS:
        ours = _find(training, scenario=scenario, method="fups", group=scenario)
        slowest = min((r for r in training if r.get("group") == scenario and r["method"] in METHODS),
                      key=lambda r: r["env_steps_per_s"], default=None)
        if scenario in bounds and ours:
            bound = bounds[scenario]["env_steps_per_s"]
            t[f"{scenario}: slowest method / Python env alone (target >= 10)"] = {
                "value": slowest["env_steps_per_s"] / bound, "target": 10.0, "at_least": True,
                "detail": f"{slowest['method']} {slowest['env_steps_per_s']:,.0f} vs {bounds[scenario]['reference']} "
                          f"{bound:,.0f} env-steps/s"}
        for method in ("adaps", "snp_ps"):
            r = _find(training, scenario=scenario, method=method, group=scenario)
            if r and ours:
                t[f"{scenario}: {method} / fups (target >= 0.95)"] = {
                    "value": paired_ratio(r, ours), "target": 0.95, "at_least": True}
    fups30 = _find(training, method="fups", group="bps-30a-3c")
    nops30 = _find(training, method="nops", group="bps-30a-3c")
    if fups30 and nops30:
        t["bps-30a-3c: nops / fups (target >= 0.5)"] = {
            "value": paired_ratio(nops30, fups30), "target": 0.5, "at_least": True}
    lbf = _find(training, scenario="lbf-10x10-6p-3f", method="fups", group="lbf-10x10-6p-3f")
    base = _find(training, method=JUMANJI_A2C)
    if lbf and base:
        t["lbf-10x10-6p-3f: our fups / minimal jumanji A2C (target > 1)"] = {
            "value": paired_ratio(lbf, base), "target": 1.0, "at_least": True,
            "detail": f"{lbf['env_steps_per_s']:,.0f} vs {base['env_steps_per_s']:,.0f} env-steps/s"}
    for row in t.values():
        row["met"] = bool(row["value"] >= row["target"]) if row["at_least"] else bool(row["value"] <= row["target"])
    return t


# ----------------------------------------------------------------------------------------------
# Report


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _machine_line(machine: dict) -> str:
    load = machine.get("load_average_1_5_15min")
    start = machine.get("load_average_at_start")
    loads = ""
    if start:
        loads += f" · load average at start {start[0]:.1f}"
    if load:
        loads += f", at end {load[0]:.1f} (1 min)"
    return (f"{machine['date']} · {machine['cpu_model']} · {machine['cpus_usable']} usable of {machine['cpu_count']} "
            f"cores · jax {machine['jax']} ({machine['jax_backend']}, {len(machine['jax_devices'])} device"
            f"{'s' if len(machine['jax_devices']) > 1 else ''}) · "
            f"XLA_FLAGS `{machine.get('xla_flags') or ''}`{loads}")


def to_markdown(report: dict) -> str:
    m = report["machine"]
    s = report["settings"]
    lines = ["# Training speed and scale", "", _machine_line(m), "",
             f"Code: git {str(report['code'].get('git_head'))[:10]}; uncommitted adaps_jax/ or envs/ files when "
             f"measured: {', '.join(report['code'].get('uncommitted', [])) or 'none'}. Wall time of this run: "
             f"{_fmt(s.get('wall_s'))} s{' (quick settings: smoke test only)' if s.get('quick') else ''}"
             f" ({', '.join(f'{k} {v:.0f} s' for k, v in s.get('section_s', {}).items())}).", ""]
    for name, error in report.get("failed_sections", {}).items():
        lines += [f"**Section {name} failed**: {error}", ""]
    if report.get("targets"):
        lines += ["## Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
        for name, r in report["targets"].items():
            detail = f" ({r['detail']})" if r.get("detail") else ""
            lines.append(f"| {name} | {_fmt(r['value'])}{detail} | {'yes' if r['met'] else '**no**'} |")
        lines.append("")
    training = report.get("training")
    if training:
        bounds = python_bounds(report.get("envs"))
        lines += ["## Training throughput (8 environments per seed, n-step 5, 4 seeds vmapped)", "",
                  "Env-steps per second of whole A2C updates (`train_chunk`: rollout, returns, loss, gradient, "
                  "Adam), all seeds together; median of "
                  f"{s['rounds']} chunks of about {s['chunk_env_steps']:,} env-steps, the methods of one "
                  "environment timed in turn; \"vs FuPS\" is the median of the per-round ratios. AdaPS and SePS ran a shortened identity phase "
                  f"({s['pretrain_steps']} env-steps of pretraining, {s['vae_epochs']} VAE epochs, "
                  f"{s['kmeans_restarts']} k-means restarts) before timing; it is not in the rates.", "",
                  "| environment | method | env-steps/s | agent-steps/s | vs FuPS | vs Python env alone | "
                  "params | init s | first chunk s |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in training:
            fups = _find(training, method="fups", group=r["group"])
            rel = paired_ratio(r, fups) if fups else None
            bound = bounds.get(r["group"], {}).get("env_steps_per_s")
            vs_python = f"{r['env_steps_per_s'] / bound:,.0f}x" if bound and r["method"] in METHODS else "-"
            lines.append(f"| {r['scenario']} | {r['method']} | {_fmt(r['env_steps_per_s'])} | "
                         f"{_fmt(r['agent_steps_per_s'])} | {_fmt(rel)} | {vs_python} | {_fmt(r.get('params'))} | "
                         f"{_fmt(r['init_s'])} | {_fmt(r['first_chunk_s'])} |")
        if bounds:
            lines += ["", "Python bound (the original environment stepped alone under random actions, fastest batch "
                      "of the environment benchmark below): " + "; ".join(
                          f"{k}: {v['reference']} {_fmt(v['env_steps_per_s'])} env-steps/s" for k, v in bounds.items())]
        lines.append("")
    evaluation = report.get("evaluation")
    if evaluation:
        lines += ["## Evaluation episodes (FuPS, 4 seeds, one quick-preset logging interval per chunk)", "",
                  f"Each chunk is one logging interval of the quick preset, then {s.get('eval_episodes', 32)} greedy "
                  "and as many sampled evaluation episodes per seed; \"share\" is the median per-round ratio of "
                  "the rate with evaluation to the rate without (1 = free).", "",
                  "| environment | eval episodes | env-steps/s | share of the rate without |", "|---|---:|---:|---:|"]
        for r in evaluation:
            base = _find(evaluation, group=r["group"], eval_episodes=0)
            lines.append(f"| {r['scenario']} | {r['eval_episodes']} | {_fmt(r['env_steps_per_s'])} | "
                         f"{_fmt(paired_ratio(r, base) if base else None)} |")
        lines.append("")

    def with_training_rows(rows: list[dict], key: str) -> list[dict]:
        scenarios = {r["scenario"] for r in rows}
        extra = [r for r in training or [] if r["method"] == "fups" and r.get("group") == r["scenario"]
                 and r["scenario"] in scenarios]
        return sorted(rows + extra, key=lambda r: (r["scenario"], r[key]))

    if report.get("batch"):
        lines += ["## Larger batches (FuPS, 4 seeds)", "", "| environment | envs per seed | env-steps/s | agent-steps/s |",
                  "|---|---:|---:|---:|"]
        for r in with_training_rows(report["batch"], "num_envs"):
            lines.append(f"| {r['scenario']} | {r['num_envs']} | {_fmt(r['env_steps_per_s'])} | {_fmt(r['agent_steps_per_s'])} |")
        lines.append("")
    if report.get("seeds"):
        lines += ["## Vmapped seeds (FuPS, 8 environments per seed)", "",
                  "| environment | seeds | env-steps/s (all seeds) | per seed |", "|---|---:|---:|---:|"]
        for r in with_training_rows(report["seeds"], "num_seeds"):
            lines.append(f"| {r['scenario']} | {r['num_seeds']} | {_fmt(r['env_steps_per_s'])} | "
                         f"{_fmt(r['env_steps_per_s'] / r['num_seeds'])} |")
        lines.append("")
    if report.get("agents"):
        base = report["agents"][0].get("maxrss_mb")
        lines += ["## Scaling in agents (8 environments per seed, 4 seeds, one process per case)", "",
                  f"Peak memory is the process's maximum resident set (a process that only started JAX: "
                  f"{_fmt(base)} MB); XLA's figure is the compiled chunk's arguments + temporaries on one device.", "",
                  "| environment | agents | method | agent-steps/s | us per agent-step | peak MB | XLA MB | "
                  "params | chunk env-steps | status |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in report["agents"][1:]:
            if r["status"] == "ok":
                xla = r.get("compiled_mb") or {}
                xla_mb = xla.get("argument", 0) + xla.get("temp", 0) if xla else None
                lines.append(f"| {r['scenario']} | {r['num_agents']} | {r['method']} | {_fmt(r['agent_steps_per_s'])} | "
                             f"{r['us_per_agent_step']:.3f} | {_fmt(r['maxrss_mb'])} | {_fmt(xla_mb)} | "
                             f"{_fmt(r['params'])} | {r['env_steps_per_chunk']:,} | ok |")
            else:
                lines.append(f"| {r['scenario']} | {bench_envs_num_agents(r['scenario'])} | {r['method']} | - | - | - | "
                             f"- | - | - | {r['status']} |")
        lines.append("")
    if report.get("devices"):
        lines += ["## Seeds sharded over CPU devices (FuPS, 4 seeds, 8 environments each)", "",
                  "| environment | devices | state on devices | env-steps/s |", "|---|---:|---:|---:|"]
        for r in report["devices"]:
            if r["status"] == "ok":
                lines.append(f"| {r['scenario']} | {r['devices']} | {r['state_devices']} | "
                             f"{_fmt(r['env_steps_per_s'])} |")
        lines.append("")
    if report.get("profile"):
        names = list(report["profile"][0]["ms_per_update"])
        lines += ["## Where the time goes (ms per A2C update of 4 seeds x 8 environments x 5 steps, one device)", "",
                  "| environment | method | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
        for r in report["profile"]:
            lines.append(f"| {r['scenario']} | {r['method']} | " +
                         " | ".join(f"{r['ms_per_update'][n]:.2f}" for n in names) + " |")
        lines.append("")
    if report.get("envs"):
        env_md = bench_envs.to_markdown(report["envs"]).split("\n", 2)[2]  # without its title line
        lines += ["## Environment stepping alone (experiments.bench_envs, same run)", "", env_md.strip(), ""]
    return "\n".join(lines)


def code_info() -> dict[str, Any]:
    return {"git_head": bench_envs.git("rev-parse", "HEAD"),
            "uncommitted": bench_envs.uncommitted("adaps_jax", "envs", "experiments/bench.py")}


BEGIN, END = "<!-- bench:begin (generated by python -m experiments.bench) -->", "<!-- bench:end -->"


def update_docs(markdown: str, path: Path) -> None:
    """Replaces the generated block of docs/BENCHMARKS.md (between the markers) with `markdown`."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = markdown.split("\n", 1)[1].replace("\n## ", "\n### ")  # below the doc's own title
    path.write_text(f"{head}{BEGIN}\n{body.strip()}\n{END}{tail}")


def write_outputs(report: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    md_path.write_text(to_markdown(report) + "\n")
    return json_path, md_path


def _accelerator() -> dict | None:
    """The GPU or TPU the measurements ran on (kind and count), or None on a CPU-only machine."""
    devices = jax.devices()
    if devices[0].platform == "cpu":
        return None
    return {"platform": devices[0].platform, "kind": devices[0].device_kind, "count": len(devices)}


def run(settings: Settings, sections: tuple[str, ...], quick: bool, log=print) -> dict:
    start = time.perf_counter()
    report: dict[str, Any] = {}
    load_at_start = list(os.getloadavg())
    steps = {"envs": lambda: bench_envs.run(settings.envs_batches, settings.envs_settings, log=log),
             "training": lambda: section_training(settings, log),
             "evaluation": lambda: section_evaluation(settings, log), "batch": lambda: section_batch(settings, log),
             "seeds": lambda: section_seeds(settings, log), "agents": lambda: section_agents(settings, log, quick),
             "devices": lambda: section_devices(settings, log, quick), "profile": lambda: section_profile(settings, log)}
    section_s, failed = {}, {}
    for name in SECTIONS:
        if name in sections:
            log(f"{name} ({time.perf_counter() - start:.0f} s so far)")
            begin = time.perf_counter()
            try:
                report[name] = steps[name]()
            except Exception as error:  # noqa: BLE001 - one broken section must not lose the others' minutes
                failed[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
                log(f"  {name} failed: {failed[name]}")
            section_s[name] = round(time.perf_counter() - begin, 1)
    machine = bench_envs.machine_info()
    machine["load_average_at_start"] = load_at_start
    machine["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    settings_dict = {k: v for k, v in settings.__dict__.items() if k != "envs_settings"}
    report = {"machine": machine, "code": code_info(),
              "settings": {**settings_dict, "quick": quick, "sections": list(sections),
                           "wall_s": round(time.perf_counter() - start, 1), "section_s": section_s},
              "accelerator": _accelerator(),
              "failed_sections": failed, **report}
    report["targets"] = targets(report)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings: a smoke run of every section")
    parser.add_argument("--out", default=None, help="output folder (default bench/, or bench/quick with --quick)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--skip-envs", action="store_true", help="leave out the environment benchmark")
    parser.add_argument("--docs", default=None,
                        help="markdown file whose generated block to update (default docs/BENCHMARKS.md for a "
                             "full run to bench/, none otherwise)")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # one case in this process (internal)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case_here(json.loads(args.case)), default=float))
        return {}
    sections = tuple(s for s in args.sections.split(",") if s and not (args.skip_envs and s == "envs"))
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; allowed: {', '.join(SECTIONS)}")
    out = Path(args.out or ("bench/quick" if args.quick else "bench"))
    report = run(QUICK if args.quick else FULL, sections, args.quick)
    json_path, md_path = write_outputs(report, out)
    markdown = to_markdown(report)
    print()
    print(markdown)
    docs = args.docs or (str(ROOT / "docs" / "BENCHMARKS.md") if not args.quick and args.out is None else None)
    failed = report["failed_sections"]
    if docs and not failed:  # a partial run does not replace the documented one
        update_docs(markdown, Path(docs))
    print(f"wrote {json_path} and {md_path}{' and ' + docs if docs and not failed else ''} in "
          f"{report['settings']['wall_s']} s")
    if failed:
        print(f"error: sections failed: {', '.join(failed)} (the others' results are written)", file=sys.stderr)
    return report


if __name__ == "__main__":
    sys.exit(1 if main().get("failed_sections") else 0)

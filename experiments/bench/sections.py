"""The sections of the benchmark, each a function (settings, log) -> list of measurements, and the
table that names them (`SECTIONS`, in the order they run)."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from adaps_jax.a2c import a2c_loss
from adaps_jax.methods import METHOD_TABLE
from adaps_jax.trainer import Trainer, make_train
from experiments import bench_envs
from experiments.bench.baseline import JUMANJI_A2C, jumanji_case
from experiments.bench.harness import (Settings, bench_config, interleave, num_agents_of, run_case_subprocess,
                                          time_call, training_case)
from experiments.presets import PRESETS, env_family

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


def section_paper(settings: Settings, log) -> list[dict]:
    """FuPS, 4 seeds: one logging interval of the paper preset as `experiments.run --preset paper`
    compiles it (with its evaluation episodes) against the training section's chunk, timed in turn:
    the paper preset's throughput as a share of `make bench`'s."""
    from adaps_jax.config import Config

    out = []
    for scenario in settings.paper_envs:
        paper = Config(scenario=scenario, method="fups", **PRESETS["paper"][env_family(scenario)])
        paper = paper.replace(total_steps=max(paper.steps_per_update * paper.num_logs,
                                              int(paper.total_steps * settings.paper_fraction)))
        cases = [training_case(bench_config(scenario, "fups", 8, 4, settings.chunk_env_steps, settings),
                               {"case": "make bench chunk"}),
                 training_case(paper, {"case": "paper preset logging interval"})]
        for r in interleave(cases, max(2, settings.rounds // 2)):
            r["group"] = f"paper {scenario}"
            out.append(r)
            log(f"  {scenario:<22} fups {r['case']:<30} {r['env_steps_per_s']:>10,.0f} env-steps/s")
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


def section_agents(settings: Settings, log, quick: bool) -> list[dict]:
    out = [{**run_case_subprocess({"baseline": True}, 120), "scenario": "(JAX started, nothing trained)"}]
    log(f"  process baseline: {out[0].get('maxrss_mb', float('nan')):.0f} MB")
    for scenario in settings.agent_scenarios:
        for method in settings.agent_methods:
            n = num_agents_of(scenario)
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



# ---- profile: the compiled pieces of one update ------------------------------------------------


def profile_pieces(scenario: str, method: str, settings: Settings, num_envs: int = 8, num_seeds: int = 4) -> dict:
    """Milliseconds per A2C update (all seeds) of each compiled piece, each run `U` times in a scan:
    the environment alone, the actor, the trainer's own rollout (with its in-place resets), loss,
    gradient, optimiser and the trainer's whole update (`Trainer.rollout`, `Trainer.update`).

    Each piece's inputs are nudged by the scan's carry so that XLA cannot hoist the work out of the
    loop, and its outputs are reduced into the carry so that nothing is dead code.
    """
    config = bench_config(scenario, method, num_envs, num_seeds, 1, settings)
    trainer: Trainer = make_train(config)
    env, net, T, E, U = trainer.env, trainer.network, config.n_steps, num_envs, settings.profile_repeats
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    rollout = jax.jit(jax.vmap(lambda s: trainer.rollout(s).rollout))(state)

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
        updates, _ = trainer.optimizer(config.hyperparams()).update(p, s.opt_state, p)
        return sum(jnp.sum(u) for u in jax.tree.leaves(updates))

    def actor_forward(p, s, r):
        return jnp.sum(net.logits(p, s.plan, r.obs))

    def env_step(state, rollout):  # the environment alone, without the trainer's in-place reset
        def body(c, _):
            env_state, key, acc = c
            key, act_key = jax.random.split(key)
            action = jax.random.randint(act_key, (E, env.num_agents), 0, env.num_actions)
            env_state, ts = jax.vmap(env.step)(env_state, action)
            return (env_state, key, acc + jnp.sum(ts.observation.agents_view) + jnp.sum(ts.reward)), None
        return jax.lax.scan(body, (state.env_state, state.key, jnp.zeros(())), None, U * T)[0][2]

    def loop(step):
        def per_seed(state):
            return jax.lax.scan(lambda s, _: (step(s), None), state, None, U)[0]
        return jax.jit(jax.vmap(per_seed))

    rollout_only = loop(lambda s: trainer.rollout(s).state)
    update = loop(lambda s: trainer.update(s).state)
    pieces = {
        "env step": (jax.jit(jax.vmap(env_step)), (state, rollout)),
        "actor forward (T steps)": (repeated(actor_forward), (state, rollout)),
        "rollout": (rollout_only, (state,)),
        "loss forward": (repeated(loss), (state, rollout)),
        "loss + gradient": (repeated(grad), (state, rollout)),
        "optimiser": (repeated(optimise), (state, rollout)),
        "whole update": (update, (state,)),
    }
    ms = {name: 1e3 * time_call(fn, *args) / U for name, (fn, args) in pieces.items()}
    return {"scenario": scenario, "method": method, "num_envs": num_envs, "num_seeds": num_seeds,
            "ms_per_update": ms,
            "env_steps_per_s_whole_update": num_seeds * num_envs * T / (ms["whole update"] / 1e3)}


def section_sweep(settings: Settings, log) -> list[dict]:
    """FuPS with `settings.sweep_values` learning rates side by side in one compiled program against
    one value alone (4 seeds each), timed in turn: env-steps per second per (value, seed)."""
    out = []
    for scenario in settings.sweep_envs:
        config = bench_config(scenario, "fups", 8, 4, settings.chunk_env_steps, settings)
        cases = [training_case(config), training_case(config, sweep={"learning_rate": settings.sweep_values})]
        for r in interleave(cases, max(2, settings.rounds // 2)):
            r["group"] = f"sweep {scenario}"
            r["per_value_seed_env_steps_per_s"] = r["env_steps_per_s"] / (r["sweep_values"] * r["num_seeds"])
            out.append(r)
            log(f"  {scenario:<22} fups values={r['sweep_values']:<3} {r['per_value_seed_env_steps_per_s']:>10,.0f} "
                "env-steps/s per (value, seed)")
    return out


BARE_KERNEL = """
import json, sys, time
from adaps_jax.runtime import configure_cpu
configure_cpu()
import jax
from adaps_jax.config import Config
from adaps_jax.trainer import make_train, seed_keys
config = Config.from_dict(json.loads(sys.argv[1]))
keys = seed_keys(config.seed, config.num_seeds)
state, metrics = jax.block_until_ready(jax.jit(jax.vmap(make_train(config).train))(keys))
"""


def section_cli(settings: Settings, log) -> list[dict]:
    """Whole processes, from start to exit, in turn: the default command line (FuPS, 4 seeds, the
    quick preset's logging points and evaluation) without the compilation cache, the same with a
    warm cache, and the bare compiled training of the identical config in one program
    (`jax.jit(jax.vmap(make_train(config).train))`)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from adaps_jax.config import Config

    scenario, steps = settings.cli_scenario, settings.cli_steps
    preset = PRESETS["quick"][env_family(scenario)]
    config = Config(scenario=scenario, method="fups", total_steps=steps, num_logs=preset["num_logs"])
    work = Path(tempfile.mkdtemp(prefix="adaps-bench-cli-"))
    cache = work / "cache"

    def cli(name: str, *flags: str) -> list[str]:
        return [sys.executable, "-m", "experiments.run", "--scenario", scenario, "--method", "fups", "--steps",
                str(steps), "--no-plots", "--out", str(work / f"{name}-{time.time_ns()}"), *flags]

    commands = {  # each call gives a fresh command (a new results folder for the command line)
        "bare kernel": lambda: [sys.executable, "-c", BARE_KERNEL, json.dumps(config.to_dict())],
        "command line, cold": lambda: cli("cold", "--no-compile-cache"),
        "command line, warm cache": lambda: cli("warm"),
    }
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    subprocess.run(commands["command line, warm cache"](), env=env, capture_output=True, check=True)  # fills the cache
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for r in range(settings.cli_rounds):
        for name in (list(commands) if r % 2 == 0 else list(reversed(commands))):
            start = time.perf_counter()
            subprocess.run(commands[name](), env=env, capture_output=True, check=True)
            seconds[name].append(time.perf_counter() - start)
    out = []
    for name, values in seconds.items():
        out.append({"group": f"cli {scenario}", "scenario": scenario, "method": "fups", "case": name,
                    "num_seeds": config.num_seeds, "env_steps_per_seed": steps, "seconds": values,
                    "median_s": float(np.median(values))})
        log(f"  {name:<26} {out[-1]['median_s']:.1f} s (whole process)")
    return out


SECTIONS = {  # name -> (settings, log, quick) -> measurements, in the order they run
    "envs": lambda settings, log, quick: bench_envs.run(settings.envs_batches, settings.envs_settings, log=log),
    "training": lambda settings, log, quick: section_training(settings, log),
    "evaluation": lambda settings, log, quick: section_evaluation(settings, log),
    "batch": lambda settings, log, quick: section_batch(settings, log),
    "seeds": lambda settings, log, quick: section_seeds(settings, log),
    "sweep": lambda settings, log, quick: section_sweep(settings, log),
    "cli": lambda settings, log, quick: section_cli(settings, log),
    "paper": lambda settings, log, quick: section_paper(settings, log),
    "agents": section_agents,
    "devices": section_devices,
    "profile": lambda settings, log, quick: section_profile(settings, log),
}

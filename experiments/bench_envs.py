"""Environment stepping speed: our JAX environments against the original Python packages.

    python -m experiments.bench_envs [--quick] [--out DIR] [--batches 1,256,2048]

Writes DIR/envs.json (machine, every measurement, the ratios the project targets) and
DIR/envs.md (the same as a table, also printed).

How each kind of environment is measured (uniformly random actions everywhere):
- JAX (ours and jumanji's): `jit` of a `lax.scan` over T steps of a `vmap`ped step with
  auto-reset (each copy whose time step is LAST is replaced by a fresh reset; the reset is
  computed for every copy and selected, as a vmapped auto-reset wrapper does). The observation and
  reward of every step are folded into the scan carry, so no work is dead-code eliminated.
  Compilation and one warm call are excluded; each repeat runs enough calls to last `min_run_s`;
  the median over repeats is reported.
- Python references (rware, lbforaging, mpe2): B separate instances stepped round-robin in one
  process (batch B = B sequential environments), including the package's own Python overhead,
  action conversion and auto-reset, since that is what a trainer using it pays. The rate is
  env-steps per wall-clock second, which is the per-environment rate.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

if __name__ == "__main__":  # as a command line: the CPU set-up before jumanji starts JAX's backend
    from adaps_jax.runtime import configure_cpu

    configure_cpu()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jumanji.types import StepType  # noqa: E402
from experiments.cli import OneLineArgumentParser

ROOT = Path(__file__).resolve().parent.parent
OUR_ENVS = ("bps-15a-3c", "crware-2c-tiny-4ag", "lbf-10x10-6p-3f")
DEFAULT_BATCHES = (1, 256, 2048)


@dataclass(frozen=True)
class Settings:
    """How long to measure. `scan_steps[b]` is T for batch b (falls back to the nearest smaller)."""

    repeats: int = 3
    min_run_s: float = 0.5
    scan_steps: tuple[tuple[int, int], ...] = ((1, 1000), (64, 200), (256, 100), (2048, 25))
    python_steps: int = 1500  # env-steps per repeat for rware / lbforaging
    mpe_steps: int = 300  # env-steps per repeat for MPE
    mpe_max_instances: int = 256  # MPE instances hold a 700x700 pygame surface each (~2 MB)

    def steps_for(self, batch: int) -> int:
        eligible = [t for b, t in self.scan_steps if b <= batch]
        return eligible[-1] if eligible else self.scan_steps[0][1]


FULL = Settings()
QUICK = Settings(
    repeats=2, min_run_s=0.02, scan_steps=((1, 50), (64, 10), (2048, 4)),
    python_steps=60, mpe_steps=10, mpe_max_instances=16,
)


# ----------------------------------------------------------------------------------------------
# JAX environments


def _num_values(env) -> np.ndarray:
    """Per-agent number of discrete actions, from the (multi-discrete) action spec."""
    return np.asarray(env.action_spec.num_values).reshape(-1)


def make_rollout(env, batch: int, steps: int) -> Callable:
    """jit(carry -> carry): `steps` vmapped steps with random actions and auto-reset."""
    num_values = jnp.asarray(_num_values(env))
    num_agents = num_values.shape[0]
    vstep, vreset = jax.vmap(env.step), jax.vmap(env.reset)

    def select(done, new, old):
        return jax.tree_util.tree_map(
            lambda n, o: jnp.where(done.reshape((batch,) + (1,) * (o.ndim - 1)), n, o), new, old
        )

    def body(carry, _):
        states, key, acc = carry
        key, action_key, reset_key = jax.random.split(key, 3)
        actions = jax.random.randint(action_key, (batch, num_agents), 0, num_values)
        states, timestep = vstep(states, actions)
        done = (timestep.step_type == StepType.LAST).reshape(batch, -1).any(axis=1)
        reset_states, reset_timestep = vreset(jax.random.split(reset_key, batch))
        states = select(done, reset_states, states)
        observation = select(done, reset_timestep.observation, timestep.observation)
        acc = acc + jnp.sum(timestep.reward.astype(jnp.float32))
        for leaf in jax.tree_util.tree_leaves(observation):
            acc = acc + jnp.sum(leaf.astype(jnp.float32))
        return (states, key, acc), None

    def rollout(carry):
        return jax.lax.scan(body, carry, None, length=steps)[0]

    return jax.jit(rollout)


def measure_jax(
    env, *, name: str, impl: str, batch: int, steps: int, repeats: int = 3, min_run_s: float = 0.5,
    seed: int = 0, note: str = "",
) -> dict[str, Any]:
    """Env-steps and agent-steps per second of `env` vmapped over `batch` copies (median of repeats)."""
    num_agents = int(_num_values(env).shape[0])
    key = jax.random.PRNGKey(seed)
    key, reset_key = jax.random.split(key)
    states, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(reset_key, batch))
    carry = (states, key, jnp.zeros((), jnp.float32))
    rollout = make_rollout(env, batch, steps)

    start = time.perf_counter()
    carry = jax.block_until_ready(rollout(carry))  # compile + first run
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    carry = jax.block_until_ready(rollout(carry))  # warm call, to size the repeats
    warm_s = time.perf_counter() - start
    calls = max(1, math.ceil(min_run_s / max(warm_s, 1e-9)))

    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            carry = rollout(carry)
        jax.block_until_ready(carry)
        rates.append(batch * steps * calls / (time.perf_counter() - start))
    checksum = float(carry[2])
    rate = statistics.median(rates)
    return {
        "env": name, "impl": impl, "batch": batch, "num_agents": num_agents,
        "env_steps_per_s": rate, "agent_steps_per_s": rate * num_agents,
        "runs_env_steps_per_s": rates, "scan_steps": steps, "calls_per_run": calls,
        "env_steps_per_run": batch * steps * calls, "compile_s": compile_s,
        "finite_checksum": math.isfinite(checksum), "note": note,
    }


def jumanji_rware():
    """jumanji's RobotWarehouse on the tiny grid of rware `tiny-4ag` (1x3 shelves, height 8, queue 4)."""
    from jumanji.environments import RobotWarehouse
    from jumanji.environments.routing.robot_warehouse.generator import RandomGenerator

    generator = RandomGenerator(
        shelf_rows=1, shelf_columns=3, column_height=8, num_agents=4, sensor_range=1, request_queue_size=4
    )
    return RobotWarehouse(generator=generator, time_limit=500)


def jumanji_lbf():
    """jumanji's LevelBasedForaging on 10x10, 6 players (levels up to 3), 3 food, full sight, 50 steps."""
    from jumanji.environments import LevelBasedForaging
    from jumanji.environments.routing.lbf.generator import RandomGenerator

    generator = RandomGenerator(grid_size=10, num_agents=6, num_food=3, fov=10, max_agent_level=3, force_coop=False)
    return LevelBasedForaging(generator=generator, time_limit=50)


# ----------------------------------------------------------------------------------------------
# Python reference environments: small adapters, each make(i) -> instance and step(instance, actions)


class RwareRef:
    """rware 2.0 `rware-tiny-4ag-v2` through gymnasium.make (as a trainer builds it)."""

    name, num_agents, num_actions = "rware tiny-4ag", 4, 5

    def make(self, index: int):
        import gymnasium as gym
        import rware  # noqa: F401  (registers the ids)

        env = gym.make("rware-tiny-4ag-v2", disable_env_checker=True)
        env.reset(seed=index)
        return env

    def step(self, env, actions: np.ndarray) -> None:
        _, _, terminated, truncated, _ = env.step(actions.tolist())
        if terminated or truncated:
            env.reset()


class LbforagingRef:
    """lbforaging 2.0 ForagingEnv: 10x10, 6 players with levels {1,2,3,1,2,3}, 3 food, full sight, 50 steps."""

    name, num_agents, num_actions = "lbforaging 10x10-6p-3f", 6, 6

    def make(self, index: int):
        from lbforaging.foraging import ForagingEnv

        levels = [(i % 3) + 1 for i in range(self.num_agents)]
        env = ForagingEnv(
            players=self.num_agents, min_player_level=levels, max_player_level=levels,
            min_food_level=1, max_food_level=None, field_size=(10, 10), max_num_food=3, sight=10,
            max_episode_steps=50, force_coop=False, observe_agent_levels=False,
        )
        env.reset(seed=index)
        return env

    def step(self, env, actions: np.ndarray) -> None:
        _, _, done, truncated, _ = env.step(actions.tolist())
        if done or truncated:
            env.reset()


class MpeSpreadRef:
    """mpe2 simple_spread parallel env with 15 agents (and 15 landmarks, collisions on), 50 steps.

    With `as_bps_fork`, the world is configured as the BPS fork: 3 landmarks, no collisions.
    """

    num_agents, num_actions = 15, 5

    def __init__(self, as_bps_fork: bool = False):
        self.as_bps_fork = as_bps_fork
        self.name = "mpe2 spread-15" + (" (as BPS fork)" if as_bps_fork else "")

    def make(self, index: int):
        from mpe2 import simple_spread_v3

        env = simple_spread_v3.parallel_env(N=self.num_agents, max_cycles=50)
        env.reset(seed=index)
        if self.as_bps_fork:
            world = env.unwrapped.world
            world.landmarks = world.landmarks[:3]
            for agent in world.agents:
                agent.collide = False
        env.bench_agent_names = list(env.possible_agents)
        return env

    def step(self, env, actions: np.ndarray) -> None:
        env.step(dict(zip(env.bench_agent_names, actions.tolist())))
        if not env.agents:
            env.reset()


def measure_python(
    ref, *, batch: int, total_steps: int, repeats: int = 3, max_instances: int | None = None, seed: int = 0,
    note: str = "",
) -> dict[str, Any]:
    """Env-steps per second of `batch` sequential instances of a Python environment.

    The instances are stepped round-robin (as a sequential vector env does); each repeat takes the
    next `total_steps` env-steps of that round-robin order, so a repeat need not visit every copy.
    """
    instances = min(batch, max_instances or batch)
    envs_ = [ref.make(seed + i) for i in range(instances)]
    rng = np.random.default_rng(seed)
    cursor = 0

    def chunk(steps: int) -> None:
        nonlocal cursor
        actions = rng.integers(0, ref.num_actions, (steps, ref.num_agents))
        for t in range(steps):
            ref.step(envs_[cursor % instances], actions[t])
            cursor = (cursor + 1) % batch

    chunk(min(instances, 64))  # warm-up: first steps, lazy imports
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        chunk(total_steps)
        rates.append(total_steps / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {
        "env": ref.name, "impl": "python", "batch": batch, "num_agents": ref.num_agents,
        "env_steps_per_s": rate, "agent_steps_per_s": rate * ref.num_agents,
        "runs_env_steps_per_s": rates, "instances": instances, "env_steps_per_run": total_steps,
        "note": note,
    }


# ----------------------------------------------------------------------------------------------
# Report


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "packages": {p: version(p) for p in ("numpy", "jumanji", "rware", "lbforaging", "mpe2", "pettingzoo")},
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def git(*args: str) -> str | None:
    """The output of `git args` in the project (trailing newlines removed), or None without git."""
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.rstrip("\n") if out.returncode == 0 else None


def uncommitted(*paths: str) -> list[str]:
    """The files under `paths` that differ from git HEAD (or are untracked)."""
    status = git("status", "--porcelain", "--", *paths) or ""
    return sorted(line[3:] for line in status.splitlines() if line.strip())  # "XY path"


def code_info() -> dict[str, Any]:
    """Which environment code was measured: git HEAD, and a hash of each envs/*.py (and if it is uncommitted)."""
    sources = {
        str(path.relative_to(ROOT)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted((ROOT / "envs").glob("*.py"))
    }
    return {"git_head": git("rev-parse", "HEAD"), "env_sources_sha256": sources,
            "env_sources_uncommitted": uncommitted("envs")}


def _rate(measurements, env: str, batch: int, key: str = "env_steps_per_s") -> float | None:
    for m in measurements:
        if m["env"] == env and m["batch"] == batch:
            return m[key]
    return None


def _ratio(measurements, num_env: str, den_env: str, batch: int, key: str = "env_steps_per_s") -> float | None:
    num, den = _rate(measurements, num_env, batch, key), _rate(measurements, den_env, batch, key)
    return None if num is None or den is None or den <= 0 else num / den


RATIOS = {
    # name: (ours, reference, rate key, what)
    "crware_vs_rware": ("crware-2c-tiny-4ag", RwareRef.name, "env_steps_per_s", "crware env-steps/s vs rware tiny-4ag"),
    "crware_vs_jumanji_rware": ("crware-2c-tiny-4ag", "jumanji RobotWarehouse tiny-4ag", "env_steps_per_s",
                                "crware vs jumanji RobotWarehouse, same batch"),
    "lbf_vs_lbforaging": ("lbf-10x10-6p-3f", LbforagingRef.name, "env_steps_per_s", "lbf env-steps/s vs lbforaging"),
    "lbf_vs_jumanji_lbf": ("lbf-10x10-6p-3f", "jumanji LevelBasedForaging 10x10-6p-3f", "env_steps_per_s",
                           "lbf vs jumanji LevelBasedForaging, same batch"),
    "bps15_vs_mpe_spread15_agent_steps": ("bps-15a-3c", "mpe2 spread-15", "agent_steps_per_s",
                                          "bps-15a-3c agent-steps/s vs mpe2 simple_spread N=15"),
    "bps15_vs_mpe_bps_fork_agent_steps": ("bps-15a-3c", "mpe2 spread-15 (as BPS fork)", "agent_steps_per_s",
                                          "bps-15a-3c agent-steps/s vs mpe2 configured as the BPS fork"),
}


def compute_ratios(measurements: list[dict], batches) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for name, (ours, ref, key, what) in RATIOS.items():
        per_batch = {str(b): _ratio(measurements, ours, ref, b, key) for b in batches}
        ratios[name] = {"what": what, "per_batch": per_batch, "at_2048": per_batch.get("2048")}
    return ratios


def build_report(measurements: list[dict], batches, settings: Settings, env_status: dict[str, str]) -> dict:
    return {
        "machine": machine_info(),
        "code": code_info(),
        "settings": {
            "batches": list(batches), "repeats": settings.repeats, "min_run_s": settings.min_run_s,
            "scan_steps": {str(b): settings.steps_for(b) for b in batches},
            "python_steps_per_repeat": settings.python_steps, "mpe_steps_per_repeat": settings.mpe_steps,
            "mpe_max_instances": settings.mpe_max_instances,
        },
        "our_envs": env_status,
        "measurements": measurements,
        "ratios": compute_ratios(measurements, batches),
    }


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


NOTES = """\
Notes
- Random uniform actions everywhere; invalid actions act as no-op where the environment says so.
- JAX rows: jit(lax.scan(T steps of vmap(step) + auto-reset)) over B copies; compilation and one
  warm call excluded; median of the repeats; observations and rewards are reduced into the scan
  carry so nothing is dead-code eliminated. Auto-reset computes a reset for every copy and selects.
- Python rows (rware, lbforaging, mpe2): B separate instances stepped round-robin in one process
  (batch B = B sequential environments), so the rate is the per-environment rate; each repeat times
  the next {py_steps} (MPE: {mpe_steps}) env-steps of the round-robin. It includes the
  package's own Python overhead (gymnasium/PettingZoo wrappers, list/dict conversion of actions,
  auto-reset), since that is what a trainer using it pays. MPE rows step at most
  {mpe_max} distinct instances round-robin (each holds a 700x700 pygame surface); the per-env rate of
  a sequential Python environment does not depend on B.
- rware: `rware-tiny-4ag-v2` (request queue 4, 500 steps). lbforaging: ForagingEnv 10x10, 6 players
  with levels (1,2,3,1,2,3) (the package permutes them per episode), 3 food, full sight, levels
  hidden, 50 steps. mpe2 spread-15: simple_spread_v3 N=15 (15 landmarks, collisions on, 50 cycles);
  "as BPS fork": the same with 3 landmarks and no collisions. jumanji: RobotWarehouse with
  RandomGenerator(1x3 shelves, height 8, 4 agents, sensor 1, queue 4), LevelBasedForaging with
  RandomGenerator(10x10, 6 agents, 3 food, fov 10, max level 3); both from jumanji {jumanji}.
- The machine may be shared with other processes; treat small differences as noise.
"""


def _load(machine: dict) -> str:
    load = machine.get("load_average_1_5_15min")
    return "n/a" if not load else " / ".join(f"{x:.1f}" for x in load) + " (1/5/15 min)"


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Environment stepping speed",
        "",
        f"{m['date']} · {m['cpu_model']} · {m['cpus_usable']} usable of {m['cpu_count']} cores · "
        f"jax {m['jax']} ({m['jax_backend']}) · load average at the end {_load(m)}",
        "",
        f"Code: git {str(report['code']['git_head'])[:10]}; envs/ files uncommitted when measured: "
        f"{', '.join(report['code']['env_sources_uncommitted']) or 'none'}",
        "",
        "Our environments: " + ", ".join(f"{k}: {v}" for k, v in report["our_envs"].items()),
        "",
        "| environment | implementation | batch | env-steps/s | agent-steps/s | compile s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in report["measurements"]:
        compile_s = f"{r['compile_s']:.1f}" if "compile_s" in r else "-"
        lines.append(
            f"| {r['env']} | {r['impl']} | {r['batch']} | {_fmt(r['env_steps_per_s'])} | "
            f"{_fmt(r['agent_steps_per_s'])} | {compile_s} |"
        )
    batches = report["settings"]["batches"]
    lines += ["", "| ratio | " + " | ".join(f"B={b}" for b in batches) + " |",
              "|---|" + "---:|" * len(batches)]
    for name, ratio in report["ratios"].items():
        cells = [(_fmt(v) + "x") if v is not None else "n/a" for v in ratio["per_batch"].values()]
        lines.append(f"| {ratio['what']} | " + " | ".join(cells) + " |")
    lines += ["", NOTES.format(mpe_max=report["settings"]["mpe_max_instances"],
                                py_steps=report["settings"]["python_steps_per_repeat"],
                                mpe_steps=report["settings"]["mpe_steps_per_repeat"],
                                jumanji=m["packages"].get("jumanji"))]
    return "\n".join(lines)


def write_outputs(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "envs.json", out / "envs.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(to_markdown(report) + "\n")
    return json_path, md_path


# ----------------------------------------------------------------------------------------------


def run(batches, settings: Settings, log: Callable[[str], None] = print) -> dict:
    import envs

    measurements: list[dict] = []
    env_status: dict[str, str] = {}

    def record(m: dict) -> None:
        measurements.append(m)
        log(f"  {m['env']:<42} {m['impl']:<9} B={m['batch']:<5} "
            f"{m['env_steps_per_s']:>14,.0f} env-steps/s {m['agent_steps_per_s']:>14,.0f} agent-steps/s")

    jax_targets: list[tuple[str, str, Callable[[], Any]]] = []
    for name in OUR_ENVS:
        try:
            env = envs.make(name)
        except ValueError:
            env_status[name] = "missing"
            log(f"  {name}: not available yet, skipped")
            continue
        env_status[name] = "measured"
        jax_targets.append((name, "adaps-jax", lambda env=env: env))
    jax_targets += [
        ("jumanji RobotWarehouse tiny-4ag", "jumanji", jumanji_rware),
        ("jumanji LevelBasedForaging 10x10-6p-3f", "jumanji", jumanji_lbf),
    ]
    for name, impl, factory in jax_targets:
        env = factory()
        for batch in batches:
            record(measure_jax(env, name=name, impl=impl, batch=batch, steps=settings.steps_for(batch),
                               repeats=settings.repeats, min_run_s=settings.min_run_s))

    python_refs = [
        (RwareRef(), settings.python_steps, None),
        (LbforagingRef(), settings.python_steps, None),
        (MpeSpreadRef(), settings.mpe_steps, settings.mpe_max_instances),
        (MpeSpreadRef(as_bps_fork=True), settings.mpe_steps, settings.mpe_max_instances),
    ]
    for ref, steps, max_instances in python_refs:
        for batch in batches:
            record(measure_python(ref, batch=batch, total_steps=steps, repeats=settings.repeats,
                                  max_instances=max_instances))
    return build_report(measurements, batches, settings, env_status)


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps and small batches (a smoke test)")
    parser.add_argument("--out", default="bench", help="output folder (default: bench/)")
    parser.add_argument("--batches", default=None,
                        help="comma-separated batch sizes (default 1,256,2048; 1,64 with --quick)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.batches:
        batches = tuple(int(b) for b in args.batches.split(","))
    else:
        batches = (1, 64) if args.quick else DEFAULT_BATCHES
    start = time.perf_counter()
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report = run(batches, settings)
    report["settings"]["wall_s"] = round(time.perf_counter() - start, 1)
    report["machine"]["load_average_at_start"] = load_at_start
    json_path, md_path = write_outputs(report, args.out)
    print()
    print(to_markdown(report))
    print(f"wrote {json_path} and {md_path} in {report['settings']['wall_s']} s")
    return report


if __name__ == "__main__":
    main()

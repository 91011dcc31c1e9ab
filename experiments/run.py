"""Train AdaPS and its baselines on one scenario, for several seeds, into a results folder.

    python -m experiments.run --env crware                      # all six methods, 4 seeds, quick
    python -m experiments.run --env bps --method adaps fups --seeds 8 --preset paper
    python -m experiments.run --resume results/bps-15a-3c-quick  # continue an interrupted run

Each method trains all its seeds at once (one jitted, vmapped program); the host only loops over
logging points to print progress, append metrics and write a checkpoint. Ctrl-C or SIGTERM stops
after the current logging point with everything written; `--resume DIR` continues exactly.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import signal
import sys
import time
from pathlib import Path

import jax
import numpy as np

import envs
from adaps_jax.config import METHODS, Config, ConfigError, parse_value
from adaps_jax.diagnostics import (diversity_agents, parameters_per_set, plan_mask_overlap, policy_diversity,
                                   used_parameter_sets)
from adaps_jax.identity import adjusted_rand_index
from adaps_jax.methods import method_spec
from adaps_jax.trainer import make_train, seed_keys
from experiments import checkpoint, results
from experiments.presets import ENV_DEFAULT_SCENARIO, PRESETS, env_family

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """Bad input from the command line; reported in one line with exit code 2."""


def code_version() -> str:
    """A hash of the library and environment sources: resuming needs the same code."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("adaps_jax/*.py"), *root.glob("envs/*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config fields for --set: " + ", ".join(f.name for f in dataclasses.fields(Config)),
    )
    p.add_argument("--env", choices=sorted(ENV_DEFAULT_SCENARIO), help="environment family, with its default scenario")
    p.add_argument("--scenario", help="scenario name (see envs.names()); overrides --env's default")
    p.add_argument("--method", nargs="+", default=["all"], metavar="METHOD",
                   help=f"one or more of: all, {', '.join(METHODS)} (default all)")
    p.add_argument("--seeds", type=int, help="number of seeds trained together (default 4)")
    p.add_argument("--steps", type=int, help="environment steps per seed, pretraining included")
    p.add_argument("--num-envs", type=int, help="parallel environment copies per seed (default 8)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="step budget (default quick)")
    p.add_argument("--out", help="results folder (default results/<scenario>-<preset>)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR (other flags are ignored)")
    p.add_argument("--config", metavar="FILE", help="JSON file of config fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set any config field")
    p.add_argument("--tensorboard", action="store_true", help="also log to DIR/tensorboard (needs tensorboardX)")
    return p


def resolve_run(args: argparse.Namespace) -> dict:
    """The full description of a new run from the command line."""
    if args.env is None and args.scenario is None:
        raise UsageError("give --env {bps,crware,lbf} or --scenario NAME (or --resume DIR)")
    scenario = args.scenario or ENV_DEFAULT_SCENARIO[args.env]
    try:
        env = envs.make(scenario)
    except ValueError as err:
        raise UsageError(str(err)) from None
    family = env_family(scenario)
    methods = list(METHODS) if "all" in args.method else args.method
    for m in methods:
        if m not in METHODS:
            raise UsageError(f"unknown method {m!r}; allowed: all, {', '.join(METHODS)}")
    fields: dict = {"scenario": scenario, **PRESETS[args.preset].get(family, {})}
    if args.config:
        try:
            loaded = results.read_json(Path(args.config))
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read config file {args.config}: {err}") from None
        known = {f.name for f in dataclasses.fields(Config)}
        unknown = set(loaded) - known
        if unknown:
            raise UsageError(f"unknown config field(s) {sorted(unknown)} in {args.config}; allowed: {', '.join(sorted(known))}")
        fields.update({k: tuple(v) if isinstance(v, list) else v for k, v in loaded.items()})
    for flag, name in (("seeds", "num_seeds"), ("steps", "total_steps"), ("num_envs", "num_envs")):
        if getattr(args, flag) is not None:
            fields[name] = getattr(args, flag)
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set needs KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        fields[key.strip()] = parse_value(key.strip(), value.strip())
    if fields.get("method", methods[0]) != methods[0] and "method" in fields:
        raise UsageError("choose methods with --method, not a config field")
    base = Config(**fields)
    for m in methods:
        base.replace(method=m).validate(env.num_agents)
    out = Path(args.out or f"results/{scenario}-{args.preset}")
    return {"scenario": scenario, "preset": args.preset, "methods": methods, "out": str(out),
            "config": _config_dict(base), "code_version": code_version(), "tensorboard": args.tensorboard}


def _config_dict(config: Config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def _config_from_dict(fields: dict) -> Config:
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def prepare_folder(run: dict, resuming: bool) -> Path:
    out = Path(run["out"])
    if resuming:
        return out
    if (out / "config.json").exists():
        old = results.read_json(out / "config.json")
        if {k: v for k, v in old.items() if k != "out"} != {k: v for k, v in run.items() if k != "out"}:
            raise UsageError(f"{out} holds a different run; choose another --out or --resume it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        results.write_json(out / "config.json", run)
    except OSError as err:
        raise UsageError(f"cannot write to output folder {out}: {err.strerror or err}") from None
    return out


def load_for_resume(directory: str) -> dict:
    path = Path(directory) / "config.json"
    if not path.exists():
        raise UsageError(f"cannot resume {directory}: no config.json there (not a results folder)")
    try:
        run = results.read_json(path)
    except ValueError as err:
        raise UsageError(f"cannot resume {directory}: config.json is corrupt ({err})") from None
    if run.get("code_version") != code_version():
        raise UsageError(f"cannot resume {directory}: it was written by code version {run.get('code_version')}, "
                         f"this is {code_version()}; rerun it from scratch")
    run["out"] = str(Path(directory))
    return run


class Progress:
    """One line per logging point, or a live bar on a terminal: steps, steps/s, time left, return."""

    def __init__(self, label: str, total_steps: int, start_steps: int):
        self.label, self.total, self.start_steps = label, total_steps, start_steps
        self.started = time.time()
        self.live = sys.stderr.isatty()

    def update(self, steps: int, mean_return: float) -> None:
        elapsed = max(time.time() - self.started, 1e-9)
        rate = (steps - self.start_steps) / elapsed
        left = (self.total - steps) / rate if rate > 0 else math.inf
        done = steps / self.total
        bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
        text = (f"{self.label:<8} [{bar}] {steps:>11,}/{self.total:,} steps  {rate:>9,.0f} steps/s  "
                f"left {_duration(left)}  return {mean_return:8.2f}")
        print("\r" + text if self.live else text, end="" if self.live else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=sys.stderr)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes:02d}:{s:02d}"


class StopRequest:
    """Turns Ctrl-C and SIGTERM into a flag checked after each logging point."""

    def __init__(self):
        self.signal: int | None = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop now, the last checkpoint stays
            raise KeyboardInterrupt
        self.signal = signum
        print("\nstopping after the current logging point (press Ctrl-C again to stop at once)", file=sys.stderr)


class NonFiniteError(RuntimeError):
    pass


def train_method(run: dict, method: str, out: Path, rows: list[dict], stop: StopRequest, writer) -> dict | None:
    """Trains one method for all seeds, from its checkpoint if there is one; its summary, or None if stopped."""
    config = _config_from_dict(run["config"]).replace(method=method)
    env = envs.make(run["scenario"])
    trainer = make_train(config, env)
    keys = seed_keys(config.seed, config.num_seeds)
    init = jax.jit(jax.vmap(trainer.init))
    chunk = jax.jit(jax.vmap(trainer.train_chunk), donate_argnums=0)
    ckpt_dir = out / "checkpoints" / method
    mine = [r for r in rows if r["method"] == method]
    if checkpoint.exists(ckpt_dir):
        state, logs_done = checkpoint.restore(ckpt_dir, jax.eval_shape(init, keys))
        rows[:] = [r for r in rows if r["method"] != method or r["log"] < logs_done]
        mine = [r for r in rows if r["method"] == method]
    else:
        state, logs_done = init(keys), 0
        rows[:] = [r for r in rows if r["method"] != method]
        mine = []
    wall_before = max((r["wall_seconds"] for r in mine), default=0.0)
    started = time.time()
    progress = Progress(method, trainer.env_steps(config.num_logs), trainer.env_steps(logs_done))
    type_names = [f"return_type_{t}" for t in range(env.num_types)]
    for log in range(logs_done, config.num_logs):
        state, metrics = chunk(state)
        m = jax.device_get(metrics)
        bad = np.flatnonzero(m.first_nonfinite_update >= 0)
        if bad.size:
            seed = int(bad[0])
            raise NonFiniteError(f"non-finite loss or gradient: method {method}, seed {seed}, update "
                                 f"{int(m.first_nonfinite_update[seed])}; the last good checkpoint is kept in {ckpt_dir}")
        wall = wall_before + time.time() - started
        for seed in range(config.num_seeds):
            episodes = int(m.episodes[seed])
            mean = float(m.return_sum[seed]) / episodes if episodes else math.nan
            row = {"method": method, "seed": seed, "log": log, "env_steps": trainer.env_steps(log + 1),
                   "wall_seconds": wall, "episodes": episodes, "return_mean": mean,
                   "entropy": float(m.entropy[seed]), "actor_loss": float(m.actor_loss[seed]),
                   "value_loss": float(m.value_loss[seed])}
            for t, name in enumerate(type_names):
                row[name] = float(m.type_return_sum[seed, t]) / episodes if episodes else math.nan
            rows.append(row)
        results.write_metrics(out / "metrics.csv", rows, type_names)
        checkpoint.save(ckpt_dir, state, log + 1)
        finished = [r["return_mean"] for r in rows if r["method"] == method and r["log"] == log]
        progress.update(trainer.env_steps(log + 1), float(np.nanmean(finished)) if not all(map(math.isnan, finished)) else math.nan)
        if writer is not None:
            writer.log(method, trainer.env_steps(log + 1), finished)
        if stop.signal is not None and log + 1 < config.num_logs:
            progress.close()
            return None
    progress.close()
    return summarise(trainer, env, config, state, rows, wall_before + time.time() - started)


def summarise(trainer, env, config: Config, state, rows: list[dict], wall: float) -> dict:
    """The summary.json entry of a finished method."""
    method = config.method
    final = []
    for seed in range(config.num_seeds):
        values = [r["return_mean"] for r in rows if r["method"] == method and r["seed"] == seed]
        final.append(results.last_finite(values))
    per_set = parameters_per_set(trainer.network)
    fups_per_set = parameters_per_set(make_train(config.replace(method="fups"), env).network)
    num_clusters = [int(k) for k in np.asarray(state.plan.num_clusters)]
    params = [per_set * used_parameter_sets(method, env.num_agents, k) for k in num_clusters]
    agents = diversity_agents(env.num_agents, config.diversity_max_agents)
    diversity = []
    for seed in range(config.num_seeds):
        seed_state = jax.tree.map(lambda x: x[seed], state)
        pool = np.asarray(seed_state.obs.agents_view).reshape(-1, env.obs_dim)[: config.diversity_observations]
        diversity.append(float(policy_diversity(trainer.network, seed_state.params, seed_state.plan, pool, agents)))
    clusters = ari = overlap = None
    if method in ("adaps", "seps"):
        clusters = np.asarray(state.plan.cluster).tolist()
        ari = [adjusted_rand_index(env.agent_types, c) for c in clusters]
    if trainer.spec.uses_masks:
        overlap = []
        for seed in range(config.num_seeds):
            seed_plan = jax.tree.map(lambda x: x[seed], state.plan)
            matrix = plan_mask_overlap(seed_plan)
            off = ~np.eye(len(matrix), dtype=bool)
            overlap.append(float(matrix[off].mean()) if off.any() else 1.0)
    finite_final = [f for f in final if not math.isnan(f)]
    return {
        "final_return_mean": float(np.mean(finite_final)) if finite_final else None,
        "final_return_min": float(np.min(finite_final)) if finite_final else None,
        "final_return_max": float(np.max(finite_final)) if finite_final else None,
        "per_seed": [None if math.isnan(f) else f for f in final],
        "env_steps": trainer.env_steps(config.num_logs),
        "params": int(np.max(params)),
        "params_per_seed": params,
        "relative_size": float(np.max(params)) / fups_per_set,
        "num_param_sets": trainer.spec.num_param_sets,
        "clusters": clusters,
        "num_clusters": num_clusters if method in ("adaps", "seps") else None,
        "cluster_ari": ari,
        "mask_overlap_mean": overlap,
        "policy_diversity": diversity,
        "policy_diversity_mean": float(np.mean(diversity)),
        "wall_seconds": wall,
    }


def execute(run: dict, out: Path) -> int:
    """Trains every method of the run that is not finished yet; the process exit code."""
    rows = results.read_metrics(out / "metrics.csv")
    summary = results.read_json(out / "summary.json") if (out / "summary.json").exists() else {}
    stop = StopRequest()
    writer = _tensorboard(out) if run.get("tensorboard") else None
    try:
        for method in run["methods"]:
            if method in summary:
                print(f"{method}: already finished, skipped", file=sys.stderr)
                continue
            entry = train_method(run, method, out, rows, stop, writer)
            if entry is None:
                break
            summary[method] = entry
            results.write_json(out / "summary.json", summary)
            print(f"{method}: final return {entry['final_return_mean']:.2f} "
                  f"[{entry['final_return_min']:.2f}, {entry['final_return_max']:.2f}] over {len(entry['per_seed'])} seeds, "
                  f"{entry['params']:,} params ({entry['relative_size']:.1f}x FuPS), diversity {entry['policy_diversity_mean']:.3f}",
                  file=sys.stderr)
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nstopped at once; resume from the last checkpoint with: python -m experiments.run --resume {out}", file=sys.stderr)
        return 130
    if stop.signal is not None and any(m not in summary for m in run["methods"]):
        print(f"stopped cleanly; resume with: python -m experiments.run --resume {out}", file=sys.stderr)
        return 128 + stop.signal
    _try_plots(out)
    print("results: " + " | ".join(f"{m} {summary[m]['final_return_mean']:.2f}" for m in run["methods"] if summary[m]["final_return_mean"] is not None)
          + f"  ({out})")
    return 0


def _tensorboard(out: Path):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UsageError("--tensorboard needs tensorboardX: pip install 'adaps-jax[logging]'") from None

    class Writer:
        def __init__(self):
            self.writer = SummaryWriter(str(out / "tensorboard"))

        def log(self, method: str, steps: int, returns: list[float]) -> None:
            for seed, value in enumerate(returns):
                if not math.isnan(value):
                    self.writer.add_scalar(f"{method}/return/seed{seed}", value, steps)
            self.writer.flush()

    return Writer()


def _try_plots(out: Path) -> None:
    """Draws the run's plots when matplotlib is installed; results never depend on it."""
    try:
        from experiments import plot
    except ImportError:
        return
    try:
        plot.plot_folders([out], out / "plots")
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install 'adaps-jax[plots]')", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.resume:
            run = load_for_resume(args.resume)
            out = prepare_folder(run, resuming=True)
        else:
            run = resolve_run(args)
            out = prepare_folder(run, resuming=False)
        return execute(run, out)
    except (UsageError, ConfigError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

"""Train AdaPS and its baselines on one scenario, for several seeds, into a results folder.

    python -m experiments.run --env crware                      # all six methods, 4 seeds, quick
    python -m experiments.run --env bps --method adaps fups --seeds 8 --preset paper
    python -m experiments.run --resume results/bps-15a-3c-quick  # continue an interrupted run

Each method trains all its seeds at once (one jitted, vmapped program); the host only loops over
logging points to print progress, append metrics and write a checkpoint. Ctrl-C or SIGTERM stops
after the current logging point with everything written (exit code 130 / 143); a second Ctrl-C
stops at once, keeping the last checkpoint. `--resume DIR` continues exactly: the resumed run ends
with the same metrics and parameters as an uninterrupted one. Running the same command again into
the same folder continues it too; a folder holding a different run is never touched.

Exit codes: 0 done, 1 numerical trouble (a non-finite loss, gradient or parameter) or a failed
write, 2 bad input (one line on stderr starting with `error:`), 130 / 143 stopped by SIGINT / SIGTERM.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from adaps_jax.runtime import configure_cpu

configure_cpu()  # before JAX's CPU backend starts (importing jumanji starts it)

import jax  # noqa: E402
import jax.numpy as jnp
import numpy as np

import envs
from adaps_jax.config import METHODS, Config, ConfigError, field_types, parse_value
from adaps_jax.diagnostics import diagnose
from adaps_jax.trainer import compiled_chunks, jit_over_seeds, make_train, seed_keys
from experiments import checkpoint, results, stats
from experiments.provenance import environment_record
from experiments.presets import ENV_DEFAULT_SCENARIO, PRESETS, env_family

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# What makes two runs the same run (a folder's config.json must match all of it to be continued).
RUN_IDENTITY = ("scenario", "methods", "config", "code_version")
# Fields chosen by their own flags, never through --set or a config file.
FLAG_FIELDS = {"scenario": "--scenario", "method": "--method"}


class UsageError(ValueError):
    """Bad input from the command line; reported in one line with exit code 2."""


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter."""


def code_version() -> str:
    """A hash of the library sources that decide a run's numbers (adaps_jax, envs): resuming needs
    the same. The command-line code around them is not hashed: tests check that a resumed run ends
    exactly where an uninterrupted one does, so it can change without stranding a long run."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    paths = [*root.glob("adaps_jax/*.py"), *root.glob("envs/*.py")]
    for path in sorted(paths):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(run: dict, method: str) -> str:
    """Identifies the run and method a checkpoint belongs to."""
    identity = {key: run[key] for key in ("scenario", "config", "code_version")}
    return hashlib.sha256(json.dumps([identity, method], sort_keys=True).encode()).hexdigest()[:16]


# ---- the command line ----------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit code 2 like every other bad input
        raise UsageError(message)


def _positive_int(text: str) -> int:
    """A positive integer; accepts `2e6` and `2_000_000`."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        value = int(number) if math.isfinite(number) and number == int(number) else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m experiments.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config fields for --set: " + ", ".join(f.name for f in dataclasses.fields(Config)),
    )
    p.add_argument("--env", choices=sorted(ENV_DEFAULT_SCENARIO), help="environment family, with its default scenario")
    p.add_argument("--scenario", help="scenario name (see envs.names()); overrides --env's default")
    p.add_argument("--method", nargs="+", metavar="METHOD", help=f"one or more of: all, {', '.join(METHODS)} (default all)")
    p.add_argument("--seeds", type=_positive_int, help="number of seeds trained together (default 4)")
    p.add_argument("--steps", type=_positive_int, help="environment steps per seed, pretraining included")
    p.add_argument("--num-envs", type=_positive_int, help="parallel environment copies per seed (default 8)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="step budget (default quick)")
    p.add_argument("--out", help="results folder (default results/<scenario>-<preset>)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR, as configured there")
    p.add_argument("--config", metavar="FILE", help="JSON file of config fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set any config field")
    p.add_argument("--tensorboard", action="store_true", help="also log to DIR/tensorboard (needs tensorboardX)")
    p.add_argument("--no-plots", action="store_true", help="do not draw DIR/plots at the end")
    return p


def _typed(name: str, value, where: str):
    """A config field's value from JSON, checked against the field's type."""
    types = field_types()
    if name not in types:
        raise UsageError(f"unknown config field {name!r} {where}; allowed: {', '.join(types)}")
    kind = types[name]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind is int and is_int or kind is str and isinstance(value, str) or kind is bool and isinstance(value, bool):
        return value
    if kind is float and (is_int or isinstance(value, float)):
        return float(value)
    if kind == (int | None) and (is_int or value is None):
        return value
    if kind == tuple[int, ...] and isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise UsageError(f"config field {name} {where} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def parse_set(items: list[str]) -> dict:
    """Config fields from `--set KEY=VALUE` items; a bad one raises an error naming it (with an
    example of a valid value for a known field)."""
    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"--set needs KEY=VALUE, got {item!r}")
        if key in FLAG_FIELDS:
            raise UsageError(f"--set {key}=... is not allowed; choose the {key} with {FLAG_FIELDS[key]}")
        try:
            fields[key] = parse_value(key, value.strip())
        except ConfigError as err:
            if key not in field_types():
                raise
            default = getattr(Config(), key)
            example = ",".join(map(str, default)) if isinstance(default, tuple) else default
            raise UsageError(f"{err}; for example {key}={example}") from None
    return fields


def resolve_run(args: argparse.Namespace) -> dict:
    """The full description of a new run from the command line."""
    if args.env is None and args.scenario is None:
        raise UsageError("give --env {bps,crware,lbf} or --scenario NAME (or --resume DIR)")
    if args.scenario is not None and not args.scenario.strip():
        raise UsageError("--scenario is empty; give a scenario name (see envs.names()) or --env {bps,crware,lbf}")
    scenario = args.scenario or ENV_DEFAULT_SCENARIO[args.env]
    try:
        env = envs.make(scenario)
    except ValueError as err:
        raise UsageError(str(err).splitlines()[0]) from None
    requested = args.method or ["all"]
    for m in requested:
        if m != "all" and m not in METHODS:
            raise UsageError(f"unknown method {m!r}; allowed: all, {', '.join(METHODS)}")
    methods = list(METHODS) if "all" in requested else list(dict.fromkeys(requested))
    preset = args.preset or "quick"
    fields: dict = {"scenario": scenario, **PRESETS[preset].get(env_family(scenario), {})}
    if args.config:
        try:
            loaded = results.read_json(Path(args.config))
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read config file {args.config}: {err}".splitlines()[0]) from None
        if not isinstance(loaded, dict):
            raise UsageError(f"config file {args.config} must hold a JSON object of config fields, "
                             f"got a {type(loaded).__name__}")
        for name, value in loaded.items():
            if name in FLAG_FIELDS:
                raise UsageError(f"config file {args.config} sets {name}; choose it with {FLAG_FIELDS[name]}")
            fields[name] = _typed(name, value, f"in {args.config}")
    for flag, name in (("seeds", "num_seeds"), ("steps", "total_steps"), ("num_envs", "num_envs")):
        if getattr(args, flag) is not None:
            fields[name] = getattr(args, flag)
    fields.update(parse_set(args.set))
    base = Config(**fields)
    for m in methods:
        base.replace(method=m).validate(env.num_agents)  # also refuses NaN and infinite numbers
    out = Path(args.out or f"results/{scenario}-{preset}")
    return {"scenario": scenario, "preset": preset, "methods": methods, "out": str(out),
            "config": _config_dict(base), "code_version": code_version(), "tensorboard": args.tensorboard,
            "environment": environment_record()}  # library versions, devices, git commit: not part of the run's identity


def _config_dict(config: Config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def _config_from_dict(fields: dict) -> Config:
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _differences(old: dict, new: dict) -> list[str]:
    """The run-identity keys (config fields named one by one) in which two runs differ."""
    diff = []
    for key in RUN_IDENTITY:
        if key == "config" and isinstance(old.get(key), dict):
            diff += [f"config.{k}" for k in sorted(set(old[key]) | set(new[key])) if old[key].get(k) != new[key].get(k)]
        elif old.get(key) != new[key]:
            diff.append(key)
    return diff


def make_folder(out: Path) -> bool:
    """Creates the output folder (so that it can be locked before anything is written in it);
    whether it was new."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; choose a folder")
    try:
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write to output folder {out}: {err.strerror or err}; choose a writable --out") from None
    return created


def prepare_folder(run: dict) -> Path:
    """The config.json of a new run in its (locked) folder; never touches a folder of another run."""
    out = Path(run["out"])
    config_path = out / "config.json"
    if config_path.exists():
        try:
            old = results.read_json(config_path)
        except (OSError, ValueError) as err:
            raise UsageError(f"{out} holds an unreadable config.json ({err}); choose another --out".splitlines()[0]) from None
        diff = _differences(old, run) if isinstance(old, dict) else ["everything"]
        if diff:
            shown = ", ".join(diff[:5]) + (", ..." if len(diff) > 5 else "")
            raise UsageError(f"{out} holds a different run (differing in {shown}); choose another --out, "
                             f"or continue that run with --resume {out}")
        print(f"{out} already holds this run: continuing it", file=sys.stderr)
        return out
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} is a non-empty folder without config.json (not a results folder); "
                         "choose a new or empty folder")
    try:
        results.write_json(config_path, run)
    except OSError as err:
        raise UsageError(f"cannot write to output folder {out}: {err.strerror or err}; choose a writable --out") from None
    return out


def load_for_resume(args: argparse.Namespace) -> dict:
    """The run stored in the --resume folder, checked against this code."""
    given = {"--env": args.env, "--scenario": args.scenario, "--method": args.method, "--seeds": args.seeds,
             "--steps": args.steps, "--num-envs": args.num_envs, "--preset": args.preset, "--out": args.out,
             "--config": args.config, "--set": args.set}
    extra = [flag for flag, value in given.items() if value]
    directory = Path(args.resume)
    if extra:
        raise UsageError(f"--resume continues {directory} exactly as its config.json says; drop {', '.join(extra)} "
                         "(or start a new run with another --out)")
    path = directory / "config.json"
    if not path.is_file():
        raise UsageError(f"cannot resume {directory}: no config.json there (not a results folder)")
    try:
        run = results.read_json(path)
        methods, scenario = run["methods"], run["scenario"]
        if not isinstance(methods, list) or not methods or any(m not in METHODS for m in methods):
            raise ValueError(f"methods must be a list of {', '.join(METHODS)}, got {methods!r}")
        fields = {name: _typed(name, value, "in config.json") for name, value in run["config"].items()}
        num_agents = envs.make(scenario).num_agents
        for m in methods:
            Config(**fields).replace(method=m).validate(num_agents)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"cannot resume {directory}: config.json is corrupt ({type(err).__name__}: {err})".splitlines()[0]) from None
    if run.get("code_version") != code_version():
        raise UsageError(f"cannot resume {directory}: it was written by code version {run.get('code_version')}, "
                         f"this is {code_version()}; rerun it from scratch into another --out")
    run["out"] = str(directory)
    run["tensorboard"] = bool(run.get("tensorboard")) or args.tensorboard
    return run


@contextmanager
def folder_lock(out: Path):
    """One process at a time per results folder: a lock on the folder itself, which the system
    releases with the process, even on kill -9."""
    handle = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{out} is in use by another running experiments.run; wait for it or stop it") from None
        yield
    finally:
        os.close(handle)


# ---- progress and signals ------------------------------------------------------------------------


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
    """Turns Ctrl-C and SIGTERM into a flag checked before each logging point's chunk.

    The handler runs even while the host waits for XLA (jax's waits check for signals); it writes
    with os.write, which is safe while the main thread is itself printing. A second signal raises
    KeyboardInterrupt: stop at once, keeping the last checkpoint.
    """

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        first = self.signal is None
        self.signal = signum
        if not first:
            raise KeyboardInterrupt
        os.write(2, f"\n{signal.Signals(signum).name}: stopping after the current logging point "
                    "(press Ctrl-C again to stop at once)\n".encode())

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)


# ---- training ------------------------------------------------------------------------------------


def _checked(chunk_fn):
    """A per-seed chunk function that also reports whether every parameter and every identity
    vector (the identity phase's own numbers) is still finite."""

    def chunk(state):
        state, metrics = chunk_fn(state)
        leaves = [*jax.tree.leaves(state.params), state.plan.identity]
        finite = jnp.stack([jnp.isfinite(x).all() for x in leaves]).all()
        return state, metrics, finite

    return chunk


def abstract_state(trainer, init, keys, logs_done: int):
    """The shapes of the training state after `logs_done` logging points (the pretraining sample
    exists only until the identity phase)."""
    shapes = jax.eval_shape(init, keys)
    if logs_done >= trainer.config.pretrain_logs > 0:
        shapes = jax.eval_shape(jax.vmap(trainer.identify), shapes)
    return shapes


def _check_rows(rows: list[dict], method: str, num_seeds: int, logs_done: int, ckpt_dir: Path) -> None:
    """metrics.csv must hold every row the checkpoint has done, and at most one logging point more
    (written just before a checkpoint that a kill interrupted)."""
    mine = {(r["seed"], r["log"]) for r in rows if r["method"] == method}
    ahead = max((log for _, log in mine), default=-1)
    if ahead > logs_done:
        raise checkpoint.CheckpointError(
            f"metrics.csv has {ahead + 1} logging points of {method} but its checkpoint {ckpt_dir} "
            f"{'is missing' if not checkpoint.exists(ckpt_dir) else f'has only {logs_done}'}; cannot resume")
    missing = [(s, log) for s in range(num_seeds) for log in range(logs_done) if (s, log) not in mine]
    if missing:
        raise checkpoint.CheckpointError(
            f"metrics.csv lacks {len(missing)} rows of {method} (seed, log) such as {missing[0]} that its checkpoint "
            f"{ckpt_dir} has done; cannot resume")


def _check_finished_rows(rows: list[dict], method: str, config: dict, out: Path) -> None:
    """A method that summary.json calls finished must have every row in metrics.csv."""
    mine = {(r["seed"], r["log"]) for r in rows if r["method"] == method}
    expected = {(s, log) for s in range(config["num_seeds"]) for log in range(config["num_logs"])}
    if not expected <= mine:
        raise checkpoint.CheckpointError(
            f"{out}/metrics.csv lacks {len(expected - mine)} of the {len(expected)} rows of {method}, which "
            f"summary.json says finished; restore metrics.csv or rerun into another --out")


def train_method(run: dict, method: str, out: Path, rows: list[dict], stop: StopRequest, writer) -> dict | None:
    """Trains one method for all seeds, from its checkpoint if there is one; its summary, or None if stopped."""
    config = _config_from_dict(run["config"]).replace(method=method)
    env = envs.make(run["scenario"])
    trainer = make_train(config, env)
    keys = seed_keys(config.seed, config.num_seeds)
    init = jit_over_seeds(trainer.init, keys)
    chunks = compiled_chunks(trainer, keys, wrap=_checked)
    ckpt_dir = out / "checkpoints" / method
    mark = fingerprint(run, method)
    state, logs_done = None, 0
    if checkpoint.exists(ckpt_dir):
        saved_logs = checkpoint.saved_logs(ckpt_dir)
        state, logs_done = checkpoint.restore(ckpt_dir, abstract_state(trainer, init, keys, saved_logs), mark)
    _check_rows(rows, method, config.num_seeds, logs_done, ckpt_dir)
    rows[:] = [r for r in rows if r["method"] != method or r["log"] < logs_done]
    if state is None:
        state = init(keys)
        checkpoint.save(ckpt_dir, state, 0, mark)  # a bad first chunk still leaves a state to inspect
    wall_before = max((r["wall_seconds"] for r in rows if r["method"] == method), default=0.0)
    started = time.time()
    progress = Progress(method, trainer.env_steps(config.num_logs), trainer.env_steps(logs_done))
    type_names = results.type_columns(env.num_types)
    try:
        for log in range(logs_done, config.num_logs):
            if stop.requested:
                return None
            state, metrics, params_finite = chunks(log)(state)
            m, params_finite = jax.device_get((metrics, params_finite))
            _raise_if_nonfinite(m, params_finite, method, log, config, ckpt_dir)
            wall = wall_before + time.time() - started
            finished = []
            for seed in range(config.num_seeds):
                episodes = int(m.episodes[seed])
                row = {"method": method, "seed": seed, "log": log, "env_steps": trainer.env_steps(log + 1),
                       "wall_seconds": wall, "episodes": episodes,
                       "return_mean": float(m.return_sum[seed]) / episodes if episodes else math.nan,
                       "entropy": float(m.entropy[seed]), "actor_loss": float(m.actor_loss[seed]),
                       "value_loss": float(m.value_loss[seed])}
                # In the order of results.type_columns: training return, then greedy and sampled test return.
                per_type = (m.type_return_sum[seed] / episodes if episodes else np.full(env.num_types, math.nan),
                            m.evaluation.greedy_type[seed], m.evaluation.sampled_type[seed])
                row.update(zip(type_names, (float(v) for values in per_type for v in values)))
                row["eval_return_greedy"] = float(m.evaluation.greedy[seed])
                row["eval_return_sampled"] = float(m.evaluation.sampled[seed])
                # Kept as metrics.csv stores them, so a resumed run computes what an uninterrupted one does.
                rows.append({k: results.metric_value(v) if isinstance(v, float) else v for k, v in row.items()})
                finished.append(rows[-1]["return_mean"])
            results.write_metrics(out / "metrics.csv", rows, type_names)  # before the checkpoint: see _check_rows
            checkpoint.save(ckpt_dir, state, log + 1, mark)
            numbers = [f for f in finished if not math.isnan(f)]
            progress.update(trainer.env_steps(log + 1), float(np.mean(numbers)) if numbers else math.nan)
            if writer is not None:
                writer.log(method, trainer.env_steps(log + 1), rows[-config.num_seeds:])
    finally:
        progress.close()
    return summarise(trainer, env, config, state, rows, wall_before + time.time() - started)


def _raise_if_nonfinite(m, params_finite: np.ndarray, method: str, log: int, config: Config, ckpt_dir: Path) -> None:
    """Stops the run at the first non-finite loss, gradient or parameter (its chunk is not saved)."""
    bad_loss = m.first_nonfinite_update >= 0
    if not bad_loss.any() and params_finite.all():
        return
    if bad_loss.any():
        update = np.where(bad_loss, m.first_nonfinite_update, np.iinfo(np.int32).max)
        seed, what = int(np.argmin(update)), "loss or gradient"
        at = int(update[seed])
    else:
        seed, what = int(np.argmin(params_finite)), "parameters or identity vectors"
        at = config.updates_done(log + 1) - 1
    raise NonFiniteError(
        f"non-finite {what} in method {method}, seed {seed}, update {at} (logging point {log}); stopped, keeping "
        f"the last good checkpoint (after {log} logging points) in {ckpt_dir} and metrics.csv up to it")


def summarise(trainer, env, config: Config, state, rows: list[dict], wall: float) -> dict:
    """The summary.json entry of a finished method. A seed without a number is None, never NaN.

    `final_return_*` and `auc_return_*` are the test return (greedy evaluation episodes; `sampled`
    holds the same for sampled actions, `per_type` per agent type) with the IQM and 95% stratified
    bootstrap intervals of experiments.stats; `train_return_*` is the mean return of the training
    episodes that ended in the last logging point that closed any. The rest is
    adaps_jax.diagnostics.diagnose: model size, clusters, masks, policy diversity.
    """
    method = config.method
    train_final = []
    for seed in range(config.num_seeds):
        values = [r["return_mean"] for r in rows if r["method"] == method and r["seed"] == seed]
        train_final.append(results.last_finite(values))
    finite_train = [f for f in train_final if not math.isnan(f)]
    test = stats.method_statistics(rows, method, env.num_types)
    test_finals = [v for v in test["per_seed_final"] or [] if v is not None]
    return {
        **test,
        "final_return_min": float(np.min(test_finals)) if test_finals else None,
        "final_return_max": float(np.max(test_finals)) if test_finals else None,
        "train_return_mean": float(np.mean(finite_train)) if finite_train else None,
        "train_return_min": float(np.min(finite_train)) if finite_train else None,
        "train_return_max": float(np.max(finite_train)) if finite_train else None,
        "train_return_seeds": len(finite_train),  # seeds with a return (the others are None in per_seed)
        "train_return_per_seed": [None if math.isnan(f) else f for f in train_final],
        "env_steps": trainer.env_steps(config.num_logs),
        **diagnose(trainer, state),
        "wall_seconds": wall,
    }


def _describe(method: str, entry: dict) -> str:
    seeds = len(entry["train_return_per_seed"])
    if entry["final_return_iqm"] is not None:
        low, high = entry["final_return_ci95"]
        result = (f"test return IQM {entry['final_return_iqm']:.2f} [95% CI {low:.2f}, {high:.2f}] over "
                  f"{entry['final_return_seeds']} of {seeds} seeds")
    elif entry["train_return_mean"] is not None:
        result = (f"training return {entry['train_return_mean']:.2f} [{entry['train_return_min']:.2f}, "
                  f"{entry['train_return_max']:.2f}] over {entry['train_return_seeds']} of {seeds} seeds")
    else:
        result = f"no episode finished in any of {seeds} seeds"
    return (f"{method}: {result}, {entry['params']:,} params ({entry['relative_size']:.1f}x FuPS), "
            f"diversity {entry['policy_diversity_mean']:.3f}")


def _compare(summary: dict, rows: list[dict]) -> None:
    """Adds to every finished method the probability that it improves on each other finished one."""
    finished = [m for m in summary if summary[m].get("final_return_iqm") is not None]
    table = stats.probability_of_improvement_table(rows, finished) if len(finished) > 1 else {}
    for method in summary:
        summary[method]["probability_of_improvement"] = table.get(method, {})


def _read_results(out: Path) -> tuple[list[dict], dict]:
    """The rows and summary already in a run folder."""
    try:
        rows = results.read_metrics(out / "metrics.csv")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{out}/metrics.csv is corrupt ({type(err).__name__}: {err}); cannot continue this run".splitlines()[0]) from None
    try:
        summary = results.read_summary(out)
    except ValueError as err:
        raise UsageError(f"{out}/summary.json is corrupt ({err}); cannot continue this run".splitlines()[0]) from None
    return rows, summary


def execute(run: dict, out: Path, stop: StopRequest, writer=None, plots: bool = True) -> int:
    """Trains every method of the run that is not finished yet; the process exit code."""
    rows, summary = _read_results(out)
    resume_hint = f"python -m experiments.run --resume {out}"
    try:
        for method in run["methods"]:
            if method in summary:
                _check_finished_rows(rows, method, run["config"], out)
                print(f"{method}: already finished, skipped", file=sys.stderr)
                continue
            entry = None if stop.requested else train_method(run, method, out, rows, stop, writer)
            if entry is None:
                break
            summary[method] = entry
            _compare(summary, rows)
            results.write_json(out / "summary.json", summary)
            print(_describe(method, entry), file=sys.stderr)
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:
        print(f"error: cannot write results to {out}: {err}; resume with: {resume_hint}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED
    if any(m not in summary for m in run["methods"]):
        print(f"stopped cleanly after a logging point; resume with: {resume_hint}", file=sys.stderr)
        return stop.exit_code()
    if plots:
        _try_plots(out)
    finals = [f"{m} {summary[m]['final_return_iqm']:.2f}" if summary[m].get("final_return_iqm") is not None
              else f"{m} n/a" for m in run["methods"]]
    print("test return IQM: " + " | ".join(finals) + f"  ({out})", file=sys.stderr)
    return 0


def _summary_writer_class():
    """tensorboardX's SummaryWriter; a UsageError with the install hint when it is missing (checked
    before the run folder is touched, so a missing package costs nothing)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UsageError("--tensorboard needs tensorboardX: pip install 'adaps-jax[logging]'") from None
    return SummaryWriter


def _tensorboard(out: Path):
    """A writer of OUT/tensorboard: per logging point and method, every metric as a scalar per seed
    (`<method>/<metric>/seed<k>`) and as the mean over the seeds that have a number
    (`<method>/<metric>/mean`), at x = environment steps per seed."""
    summary_writer = _summary_writer_class()
    # metrics.csv column -> tag; per-type columns end in _{t} and keep it in the tag.
    columns = {"return_mean": "train/return", "eval_return_greedy": "test/return_greedy",
               "eval_return_sampled": "test/return_sampled", "actor_loss": "loss/actor", "value_loss": "loss/value",
               "entropy": "entropy"}
    typed = {"return_type_": "train/return_type_", "eval_return_greedy_type_": "test/return_greedy_type_",
             "eval_return_sampled_type_": "test/return_sampled_type_"}

    def tag_of(column: str) -> str | None:
        if column in columns:
            return columns[column]
        for prefix, tag in typed.items():
            if column.startswith(prefix) and column[len(prefix):].isdigit():
                return tag + column[len(prefix):]
        return None

    class Writer:
        def __init__(self):
            self.writer = summary_writer(str(out / "tensorboard"))
            # Per method, (env_steps, wall_seconds) of the last logged point. A fresh run starts at
            # (0, 0); after --resume the first rate is the average since training began.
            self.last: dict[str, tuple[int, float]] = {}

        def log(self, method: str, steps: int, rows: list[dict]) -> None:
            """`rows`: the metrics.csv rows of one logging point, one per seed."""
            for column in sorted({c for r in rows for c in r}):
                tag = tag_of(column)
                if tag is None:
                    continue
                values = []
                for r in rows:
                    value = r.get(column, math.nan)
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        self.writer.add_scalar(f"{method}/{tag}/seed{r['seed']}", value, steps)
                        values.append(value)
                if values:  # NaN (no finished episode in a seed) is left out, never written
                    self.writer.add_scalar(f"{method}/{tag}/mean", float(np.mean(values)), steps)
            wall = max((r["wall_seconds"] for r in rows), default=math.nan)
            last_steps, last_wall = self.last.get(method, (0, 0.0))
            if math.isfinite(wall) and wall > last_wall:
                # The seeds run side by side, so the rate counts the steps of all of them.
                rate = (steps - last_steps) * len(rows) / (wall - last_wall)
                self.writer.add_scalar(f"{method}/env_steps_per_second", rate, steps)
                self.last[method] = (steps, wall)
            self.writer.flush()

        def close(self) -> None:
            self.writer.close()

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
    except Exception as err:  # a plotting bug must not turn a finished run into a failure
        print(f"plots skipped: {type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    out, created = None, False
    with StopRequest() as stop:
        try:
            args = build_parser().parse_args(argv)
            if args.tensorboard:
                _summary_writer_class()  # before anything is written
            run = load_for_resume(args) if args.resume else resolve_run(args)
            out = Path(run["out"])
            if not args.resume:
                created = make_folder(out)
            # The lock comes before config.json: two runs started into one new folder at the same
            # instant must not both write it (the loser stops with "in use").
            with folder_lock(out):
                if not args.resume:
                    prepare_folder(run)
                writer = _tensorboard(out) if run.get("tensorboard") else None
                return execute(run, out, stop, writer, plots=not args.no_plots)
        except (UsageError, ConfigError, checkpoint.CheckpointError) as err:
            if created and out is not None and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # a run that never started leaves no folder behind
            print(f"error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:  # a second Ctrl-C (or the first, before the handler was set)
            hint = f"; resume from the last checkpoint with: python -m experiments.run --resume {out}" if out else ""
            print(f"\nstopped at once{hint}", file=sys.stderr)
            return stop.exit_code()


if __name__ == "__main__":
    sys.exit(main())

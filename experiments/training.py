"""The training loop of the command line: one method (and all its swept values) for all seeds.

    entries = train_method(run, "adaps", out, rows, stop, tensorboard_writer, process_started)

Every variant of a method (run.method_variants) and every seed step together in one compiled
program: the leading axis is variant-major (variant v, seed s at v * num_seeds + s), each variant
with the same seed keys and its own `Hyperparams` in the training state. The chunk kinds
(pretraining, pretraining then identity phase, RL) are compiled ahead of time, timed, and checked
against the machine's memory before anything runs. After every logging point the host appends the
metrics rows, then hands the checkpoint to a background writer (checkpoint.Writer) and starts the
next chunk at once; a non-finite loss, gradient, parameter or identity vector
stops the run, keeping the last good checkpoint.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import envs
from adaps_jax.config import Config
from adaps_jax.diagnostics import diagnose
from adaps_jax.trainer import jit_over_seeds, make_train
from experiments import checkpoint, results, stats
from experiments.console import Progress, StopRequest
from experiments.description import RunDescription, Variant
from experiments.folder import check_rows

# A method's timing in summary.json and its checkpoint, each summed over the processes that trained
# it: the process time (the first method of a process also counts the start-up), compilation, and
# the time between chunks (rows, files, the checkpoint's copy to host memory) in which nothing trained.
TIMING_FIELDS = ("wall_seconds", "compile_seconds", "between_chunks_seconds")


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter."""


class OutOfMemory(RuntimeError):
    """The compiled training would not fit the machine's memory."""


def checked(chunk_fn):
    """A per-seed chunk function that also reports whether every parameter and every identity
    vector (the identity phase's own numbers) is still finite."""

    def chunk(state):
        state, metrics = chunk_fn(state)
        leaves = [*jax.tree.leaves(state.params), state.plan.identity]
        finite = jnp.stack([jnp.isfinite(x).all() for x in leaves]).all()
        return state, metrics, finite

    return chunk


def variant_keys(seed: int, num_seeds: int, num_variants: int) -> jax.Array:
    """The seed keys, repeated for every variant (each variant sees the same seeds), sharded over
    the devices along the leading axis (`adaps_jax.trainer.shard_over_seeds`)."""
    from adaps_jax.trainer import shard_over_seeds

    return shard_over_seeds(jnp.tile(jax.random.split(jax.random.PRNGKey(seed), num_seeds), (num_variants, 1)))


def variant_hparams(config: Config, variants: list[Variant], num_seeds: int, keys: jax.Array):
    """The swept values as (variants * seeds,) arrays laid out like `keys`; None without a sweep."""
    if not variants[0].values:
        return None
    base = config.hyperparams()
    columns = {name: np.repeat([v.values.get(name, getattr(base, name)) for v in variants], num_seeds)
               for name in base._fields}
    return jax.tree.map(lambda x: jax.device_put(jnp.asarray(x, jnp.float32), keys.sharding),
                        base._replace(**columns))


def abstract_state(trainer, keys, logs_done: int, hparams=None):
    """The shapes of the training state after `logs_done` logging points (the pretraining sample
    exists only until the identity phase)."""
    init = jax.vmap(trainer.init)
    shapes = jax.eval_shape(init, keys) if hparams is None else jax.eval_shape(init, keys, hparams)
    if logs_done >= trainer.config.pretrain_logs > 0:
        shapes = jax.eval_shape(jax.vmap(trainer.identify), shapes)
    return shapes


def available_memory() -> tuple[int | None, str]:
    """Bytes the computation may use and where: the first device's free memory on an accelerator,
    else the system's available memory (MemAvailable)."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats_ = device.memory_stats() or {}
        if "bytes_limit" in stats_:
            return stats_["bytes_limit"] - stats_.get("bytes_in_use", 0), f"{device.device_kind} memory"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available system memory"
    except OSError:
        pass
    return None, "memory"


def memory_needed(compiled) -> int | None:
    """Peak bytes of one call of a compiled program, by XLA's memory analysis (arguments,
    outputs and temporaries; donated buffers counted once), summed over its devices."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
            - analysis.alias_size_in_bytes)


def check_memory(name: str, needed: int | None) -> None:
    free, where = available_memory()
    if needed is not None and free is not None and needed > free:
        raise OutOfMemory(f"{name} needs about {needed / 2**30:.1f} GiB by XLA's memory analysis, but only "
                           f"{free / 2**30:.1f} GiB of {where} is free; lower seeds, num_envs, hidden_sizes or "
                           "the scenario's size")


class Compiled:
    """The method's programs, compiled ahead of time: init and each chunk kind it needs, timed."""

    def __init__(self, trainer, keys, hparams, logs_done: int, progress: Progress):
        self.trainer, self.keys, self.hparams = trainer, keys, hparams
        self.seconds = 0.0
        sharding = keys.sharding if isinstance(keys.sharding, jax.sharding.NamedSharding) else None
        init = jit_over_seeds(trainer.init, keys)
        init_args = (keys,) if hparams is None else (keys, hparams)

        def spec(shapes):
            return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)

        progress.note("compiling (XLA; a cache on disk makes the next run of this config start at once)")
        # The chunk that ends the pretraining drops the pretraining sample, so XLA cannot reuse those
        # donated buffers; its warning says nothing the user can act on.
        warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
        started = time.time()
        self.init = None
        if logs_done == 0:
            self.init = init.lower(*init_args).compile()
            check_memory("initialisation", memory_needed(self.init))
        self.chunks: dict = {}
        for log in range(logs_done, trainer.config.num_logs):
            fn = trainer.chunk(log)
            if fn not in self.chunks:
                shapes = abstract_state(trainer, keys, log, hparams)
                compiled = jit_over_seeds(checked(fn), keys, donate=True).lower(spec(shapes)).compile()
                check_memory("a training chunk", memory_needed(compiled))
                self.chunks[fn] = compiled
        self.seconds = time.time() - started

    def chunk(self, log: int):
        return self.chunks[self.trainer.chunk(log)]


def train_method(run: RunDescription, method: str, out: Path, rows: list[dict], stop: StopRequest, tensorboard,
                 process_started: float) -> dict | None:
    """Trains every variant of one method for all seeds, from its checkpoint if there is one;
    {variant name: summary entry}, or None if stopped."""
    variants = run.method_variants(method)
    config = run.config_of(variants[0])
    env = envs.make(run.scenario)
    trainer = make_train(config, env)
    seeds = config.num_seeds
    keys = variant_keys(config.seed, seeds, len(variants))
    hparams = variant_hparams(config, variants, seeds, keys)
    ckpt_dir = out / "checkpoints" / method
    mark = run.fingerprint(method)
    progress = Progress(method, trainer.env_steps(config.num_logs), seeds * len(variants))
    state, logs_done, meta = None, 0, {}
    if checkpoint.exists(ckpt_dir):
        meta = checkpoint.meta(ckpt_dir)
        shapes = abstract_state(trainer, keys, int(meta["logs_done"]), hparams)
        state, logs_done = checkpoint.restore(ckpt_dir, shapes, mark)
    for variant in variants:
        check_rows(rows, variant.name, seeds, logs_done, ckpt_dir)
    if logs_done:
        progress.note(f"resuming after logging point {logs_done} of {config.num_logs}")
    names = {v.name for v in variants}
    rows[:] = [r for r in rows if r["method"] not in names or r["log"] < logs_done]
    # Time spent on this method: in earlier processes (the checkpoint's), and in this one since it
    # started (the first method of a process also counts the process's start-up).
    before = {field: float(meta.get(field, 0.0)) for field in TIMING_FIELDS}
    started = process_started
    programs = Compiled(trainer, keys, hparams, logs_done, progress)
    between_chunks = 0.0  # after the first chunk: time in which no chunk ran (rows, files, copies)
    writer = checkpoint.Writer()

    def timing() -> dict[str, float]:
        return {"wall_seconds": before["wall_seconds"] + time.time() - started,
                "compile_seconds": before["compile_seconds"] + programs.seconds,
                "between_chunks_seconds": before["between_chunks_seconds"] + between_chunks}

    def save(done: int) -> None:
        writer.save(ckpt_dir, state, done, mark, extra=timing())

    type_names = results.type_columns(env.num_types)
    leaving = None
    try:
        if state is None:
            state = programs.init(*((keys,) if hparams is None else (keys, hparams)))
            save(0)  # a bad first chunk still leaves a state to inspect
        chunk_ended = None
        for log in range(logs_done, config.num_logs):
            if stop.requested:
                return None
            if log == config.pretrain_logs - 1:
                progress.note("this logging point ends the pretraining and runs the identity phase "
                              "(VAE, k-means, masks)")
            chunk_started = time.time()
            if chunk_ended is not None:
                between_chunks += chunk_started - chunk_ended
            state, metrics, params_finite = programs.chunk(log)(state)
            m, params_finite = jax.device_get((metrics, params_finite))
            chunk_ended = time.time()
            chunk_seconds = chunk_ended - chunk_started
            raise_if_nonfinite(m, params_finite, variants, seeds, log, config, ckpt_dir)
            wall = timing()["wall_seconds"]
            finished = []
            for index in range(len(variants) * seeds):
                variant, seed = variants[index // seeds], index % seeds
                rows.append(metrics_row(variant, seed, log, trainer, m, index, wall, env.num_types, type_names))
                finished.append(rows[-1]["return_mean"])
            # The previous checkpoint reaches the disk before these rows do (it had the whole chunk's
            # time to), so metrics.csv is at most one logging point ahead of the checkpoint, which
            # resuming accepts, and never behind it.
            writer.wait()
            results.write_metrics(out / "metrics.csv", rows, type_names, run.sweep)
            save(log + 1)
            numbers = [f for f in finished if not math.isnan(f)]
            steps = trainer.env_steps(log + 1)
            progress.update(steps, steps - trainer.env_steps(log), chunk_seconds,
                            timed=log != config.pretrain_logs - 1, mean_return=float(np.mean(numbers)) if numbers else math.nan)
            if tensorboard is not None:
                for variant in variants:
                    tensorboard.log(variant.name, steps, [r for r in rows[-len(variants) * seeds:] if r["method"] == variant.name])
    except BaseException as error:
        leaving = error
        raise
    finally:
        progress.close()
        writer.finish(leaving)  # the last checkpoint is on disk before the method counts as stopped or done
    spent = timing()  # one figure for every variant: they trained together
    entries = {}
    for v, variant in enumerate(variants):
        part = jax.tree.map(lambda x: x[v * seeds:(v + 1) * seeds], state)
        entries[variant.name] = summarise(trainer, part, rows, variant.name, spent)
    return entries


def metrics_row(variant: Variant, seed: int, log: int, trainer, m, index: int, wall: float, num_types: int,
                type_names: list[str]) -> dict:
    """One metrics.csv row, kept as metrics.csv stores it, so a resumed run computes what an
    uninterrupted one does."""
    episodes = int(m.episodes[index])
    row = {"method": variant.name, "seed": seed, "log": log, "env_steps": trainer.env_steps(log + 1),
           "wall_seconds": wall, "episodes": episodes,
           "return_mean": float(m.return_sum[index]) / episodes if episodes else math.nan,
           "entropy": float(m.entropy[index]), "actor_loss": float(m.actor_loss[index]),
           "value_loss": float(m.value_loss[index])}
    # In the order of results.type_columns: training return, then greedy and sampled test return.
    per_type = (m.type_return_sum[index] / episodes if episodes else np.full(num_types, math.nan),
                m.evaluation.greedy_type[index], m.evaluation.sampled_type[index])
    row.update(zip(type_names, (float(v) for values in per_type for v in values)))
    row["eval_return_greedy"] = float(m.evaluation.greedy[index])
    row["eval_return_sampled"] = float(m.evaluation.sampled[index])
    row.update(variant.values)
    return {k: results.metric_value(v) if isinstance(v, float) else v for k, v in row.items()}


def raise_if_nonfinite(m, params_finite: np.ndarray, variants: list[Variant], seeds: int, log: int, config: Config,
                       ckpt_dir: Path) -> None:
    """Stops the run at the first non-finite loss, gradient or parameter (its chunk is not saved)."""
    bad_loss = m.first_nonfinite_update >= 0
    if not bad_loss.any() and params_finite.all():
        return
    if bad_loss.any():
        update = np.where(bad_loss, m.first_nonfinite_update, np.iinfo(np.int32).max)
        index, what = int(np.argmin(update)), "loss or gradient"
        at = int(update[index])
    else:
        index, what = int(np.argmin(params_finite)), "parameters or identity vectors"
        at = config.updates_done(log + 1) - 1
    raise NonFiniteError(
        f"non-finite {what} in method {variants[index // seeds].name}, seed {index % seeds}, update {at} (logging "
        f"point {log}); stopped, keeping the last good checkpoint (after {log} logging points) in {ckpt_dir} and "
        "metrics.csv up to it")


def summarise(trainer, state, rows: list[dict], name: str, timing: dict[str, float]) -> dict:
    """The summary.json entry of a finished variant. A seed without a number is None, never NaN.

    `final_return_*` and `auc_return_*` are the test return (greedy evaluation episodes; `sampled`
    holds the same for sampled actions, `per_type` per agent type) with the IQM and 95% stratified
    bootstrap intervals of experiments.stats; `train_return_*` is the mean return of the training
    episodes that ended in the last logging point that closed any. The rest is
    adaps_jax.diagnostics.diagnose: model size, clusters, masks, policy diversity; then `timing`
    (TIMING_FIELDS).
    """
    config = trainer.config
    train_final = []
    for seed in range(config.num_seeds):
        values = [r["return_mean"] for r in rows if r["method"] == name and r["seed"] == seed]
        train_final.append(results.last_finite(values))
    finite_train = [f for f in train_final if not math.isnan(f)]
    test = stats.method_statistics(rows, name, trainer.env.num_types)
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
        **timing,
    }


def compare(summary: dict, rows: list[dict]) -> None:
    """Adds to every finished entry the probability that it improves on each other finished one."""
    finished = [m for m in summary if summary[m].get("final_return_iqm") is not None]
    table = stats.probability_of_improvement_table(rows, finished) if len(finished) > 1 else {}
    for method in summary:
        summary[method]["probability_of_improvement"] = table.get(method, {})

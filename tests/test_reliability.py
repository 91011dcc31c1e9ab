"""experiments.run survives interruption and numerical trouble, and loses nothing.

The interruption tests start `python -m experiments.run` in subprocesses, interrupt each one (SIGINT,
SIGTERM, SIGKILL) once it has written k logging points, resume it, and compare the metrics, the
summary and the final checkpoint with one uninterrupted run. The subprocesses run a snapshot of
the sources (edits made elsewhere while the tests run cannot change the code version between a
run and its resume) and share a persistent XLA compilation cache, so each program compiles once.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaps_jax import trainer as trainer_module
from adaps_jax.trainer import ChunkMetrics
import envs
from adaps_jax.config import Config, ConfigError
from experiments import checkpoint, results, training
from experiments import run as run_module
from experiments.console import describe
from experiments.description import Variant
from experiments.folder import folder_lock

ROOT = Path(__file__).resolve().parent.parent
NUM_LOGS = 10
# 2 copies x 5 steps = 10 steps per update and seed: 2000 steps are 10 logging points of 20 updates.
TINY = ["--env", "bps", "--seeds", "2", "--num-envs", "2", "--steps", "2000", "--set", "hidden_sizes=16",
        "--set", f"num_logs={NUM_LOGS}", "--no-plots"]
FUPS = [*TINY, "--method", "fups"]
# AdaPS with a short identity phase: one logging point of 20 pretraining updates, then 9 of 22 RL updates.
ADAPS = [*TINY, "--method", "adaps", "--steps", "2200", "--set", "pretrain_steps=200", "--set", "vae_epochs=2",
         "--set", "num_clusters=3", "--set", "kmeans_restarts=2"]
TIMEOUT = 300


class Sandbox:
    """Runs experiments.run in subprocesses on a snapshot of the sources."""

    def __init__(self, root: Path):
        self.root = root
        self.code = root / "code"
        for package in ("adaps_jax", "envs", "experiments"):
            shutil.copytree(ROOT / package, self.code / package, ignore=shutil.ignore_patterns("__pycache__"))
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAX_PLATFORMS": "cpu",
                    "JAX_COMPILATION_CACHE_DIR": str(root / "xla-cache"),
                    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}

    def start(self, args: list[str], log: Path) -> subprocess.Popen:
        with open(log, "w") as stderr:  # a file, not a pipe: nothing blocks when nobody reads
            return subprocess.Popen([sys.executable, "-m", "experiments.run", *args], cwd=self.code, env=self.env,
                                    stdout=subprocess.DEVNULL, stderr=stderr)

    def run(self, args: list[str], log: Path) -> int:
        proc = self.start(args, log)
        return proc.wait(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return Sandbox(tmp_path_factory.mktemp("reliability"))


def _finished_run(sandbox: Sandbox, args: list[str], name: str) -> Path:
    out = sandbox.root / name
    code = sandbox.run([*args, "--out", str(out)], sandbox.root / f"{name}.log")
    assert code == 0, (sandbox.root / f"{name}.log").read_text()
    return out


@pytest.fixture(scope="module")
def fups_reference(sandbox) -> Path:
    """One uninterrupted FuPS run, shared by every FuPS test."""
    return _finished_run(sandbox, FUPS, "fups-reference")


def _logs_written(folder: Path) -> int:
    path = folder / "metrics.csv"
    return len({r["log"] for r in results.read_metrics(path)}) if path.exists() else 0


def _metrics_without_wall_time(folder: Path) -> list[str]:
    lines = (folder / "metrics.csv").read_text().splitlines()
    wall = lines[0].split(",").index("wall_seconds")
    return [",".join(c for i, c in enumerate(line.split(",")) if i != wall) for line in lines]


def _summary_without_wall_time(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    return {method: {k: v for k, v in entry.items() if k not in training.TIMING_FIELDS} for method, entry in summary.items()}


def _final_checkpoint(folder: Path, method: str):
    state, logs_done = checkpoint.restore(folder / "checkpoints" / method, None)
    assert logs_done == NUM_LOGS
    return state


def assert_same_results(folder: Path, reference: Path, method: str) -> None:
    """Same metrics (all columns but wall_seconds), summary (but wall time) and final state."""
    assert _metrics_without_wall_time(folder) == _metrics_without_wall_time(reference)
    assert _summary_without_wall_time(folder) == _summary_without_wall_time(reference)
    state, expected = _final_checkpoint(folder, method), _final_checkpoint(reference, method)
    assert jax.tree.structure(state) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def interrupt_and_resume(sandbox: Sandbox, args: list[str], name: str, sig: signal.Signals, k: int) -> Path:
    """Starts a run, sends `sig` once it has written k logging points (k=0: once it has begun), checks
    what the interrupted run left, resumes it to the end and returns its folder."""
    out, log = sandbox.root / name, sandbox.root / f"{name}.log"
    proc = sandbox.start([*args, "--out", str(out)], log)
    deadline = time.time() + TIMEOUT
    while _logs_written(out) < k if k else not (out / "config.json").exists():
        assert proc.poll() is None, f"the run ended before {k} logging points:\n{log.read_text()}"
        assert time.time() < deadline, "the run is too slow"
        time.sleep(0.01)
    proc.send_signal(sig)
    code = proc.wait(timeout=TIMEOUT)
    stderr = log.read_text()
    done = _logs_written(out)
    assert not (out / "summary.json").exists(), "interrupted too late: the run had finished"
    assert k <= done < NUM_LOGS
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        # A clean stop: exit 128 + signal, the current chunk's metrics and its checkpoint written, and how to resume.
        assert code == 128 + sig, stderr
        assert f"resume with: python -m experiments.run --resume {out}" in stderr.splitlines()[-1]
        assert checkpoint.saved_logs(out / "checkpoints" / args[args.index("--method") + 1]) == done
    rows = results.read_metrics(out / "metrics.csv") if done else []
    assert sorted((r["log"], r["seed"]) for r in rows) == [(log, seed) for log in range(done) for seed in range(2)]
    code = sandbox.run(["--resume", str(out), "--no-plots"], sandbox.root / f"{name}-resume.log")
    assert code == 0, (sandbox.root / f"{name}-resume.log").read_text()
    return out


@pytest.mark.parametrize("sig, k", [pytest.param(signal.SIGINT, 2, marks=pytest.mark.slow), (signal.SIGTERM, 0),
                                    (signal.SIGKILL, 4)],
                         ids=["SIGINT-after-2", "SIGTERM-at-start", "SIGKILL-after-4"])
def test_interrupted_and_resumed_run_equals_uninterrupted(sandbox, fups_reference, sig, k):
    folder = interrupt_and_resume(sandbox, FUPS, f"fups-{sig.name}", sig, k)
    assert_same_results(folder, fups_reference, "fups")


@pytest.mark.slow  # an AdaPS run twice, with its identity phase: minutes of CPU
def test_adaps_interrupted_after_identity_phase_resumes_exactly(sandbox):
    reference = _finished_run(sandbox, ADAPS, "adaps-reference")
    folder = interrupt_and_resume(sandbox, ADAPS, "adaps-SIGINT", signal.SIGINT, 1)
    assert_same_results(folder, reference, "adaps")


@pytest.mark.slow  # minutes of compilation; `make test-slow`
def test_same_config_and_seed_same_metrics_other_seed_differs(sandbox, fups_reference):
    again = _finished_run(sandbox, FUPS, "fups-again")
    assert _metrics_without_wall_time(again) == _metrics_without_wall_time(fups_reference)
    other = _finished_run(sandbox, [*FUPS, "--set", "seed=1"], "fups-seed1")
    rows, other_rows = results.read_metrics(fups_reference / "metrics.csv"), results.read_metrics(other / "metrics.csv")
    assert [r["return_mean"] for r in rows] != [r["return_mean"] for r in other_rows]
    # The seeds trained together differ from each other too.
    assert [r["return_mean"] for r in rows if r["seed"] == 0] != [r["return_mean"] for r in rows if r["seed"] == 1]


def test_a_flipped_byte_in_a_checkpoint_is_refused(fups_reference, tmp_path):
    """Every file of a checkpoint is checked against the SHA-256 written with it: one flipped bit
    anywhere in the saved state is a corrupt checkpoint, never restored (the command line turns
    CheckpointError into one line and exit 2: tests/test_cli_errors.py)."""
    source = fups_reference / "checkpoints" / "fups"
    state_files = sorted(p.relative_to(source) for p in (source / "state").rglob("*") if p.is_file())
    checkpoint.restore(source, None)  # intact: restores
    for index in (0, len(state_files) // 2, len(state_files) - 1):
        copy = tmp_path / f"flipped-{index}"
        shutil.copytree(source, copy)
        data = bytearray((copy / state_files[index]).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / state_files[index]).write_bytes(bytes(data))
        with pytest.raises(checkpoint.CheckpointError, match="checksum mismatch"):
            checkpoint.restore(copy, None)


def test_rerunning_a_finished_run_changes_nothing(sandbox, fups_reference, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(fups_reference, folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert sandbox.run(["--resume", str(folder), "--no-plots"], tmp_path / "log") == 0
    assert "fups: already finished, skipped" in (tmp_path / "log").read_text()
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


# ---- numerical trouble (in-process) --------------------------------------------------------------


def _main(argv: list[str]) -> int:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    code = run_module.main(argv)
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # main gives Ctrl-C back
    return code


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_nan_reward_stops_with_one_line_keeping_last_good_chunk(tmp_path, monkeypatch, capsys):
    """Rewards turn NaN from update 45 on (in logging point 2, updates 40..59): the run stops there."""
    original = trainer_module.Trainer.rollout

    def poisoned(self, state):
        state_after, rollout, episodes = original(self, state)
        reward = jax.numpy.where(state.update >= 45, jax.numpy.nan, rollout.reward)
        return state_after, rollout._replace(reward=reward), episodes

    monkeypatch.setattr(trainer_module.Trainer, "rollout", poisoned)
    out = tmp_path / "run"
    code = _main([*FUPS, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert _error_lines(err) == [err.splitlines()[-1]]
    message = err.splitlines()[-1]
    assert "non-finite loss or gradient in method fups, seed 0, update 45 (logging point 2)" in message
    assert str(out / "checkpoints" / "fups") in message
    # The last good chunk's metrics and checkpoint remain; the bad chunk left nothing; no summary.
    rows = results.read_metrics(out / "metrics.csv")
    assert sorted({r["log"] for r in rows}) == [0, 1]
    assert all(math.isfinite(r["return_mean"]) and math.isfinite(r["actor_loss"]) for r in rows)
    state, logs_done = checkpoint.restore(out / "checkpoints" / "fups", None)
    assert logs_done == 2
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["params"]))
    assert np.asarray(state["update"]).tolist() == [40, 40]
    assert not (out / "summary.json").exists()


def test_huge_learning_rate_stops_at_once_keeping_the_initial_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = _main([*FUPS, "--set", "learning_rate=1e30", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert len(_error_lines(err)) == 1
    assert err.splitlines()[-1].startswith("error: non-finite loss or gradient in method fups, seed ")
    assert "update 1 (logging point 0)" in err
    assert not (out / "metrics.csv").exists()
    state, logs_done = checkpoint.restore(out / "checkpoints" / "fups", None)
    assert logs_done == 0 and all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["params"]))


def test_nonfinite_parameters_are_caught_even_with_finite_losses():
    metrics = ChunkMetrics(*(np.zeros(2) for _ in range(6)), first_nonfinite_update=np.array([-1, -1]),
                           evaluation=None)
    nops = [Variant("nops", "nops", {})]
    with pytest.raises(training.NonFiniteError, match=r"non-finite parameters or identity vectors in method nops, seed 1, update 39 "
                                                       r"\(logging point 1\)"):
        training.raise_if_nonfinite(metrics, np.array([True, False]), nops, 2, 1,
                                    Config(num_logs=2, total_steps=400, num_envs=2), Path("ckpt"))
    training.raise_if_nonfinite(metrics, np.array([True, True]), nops, 2, 1, Config(), Path("ckpt"))


def test_summary_never_averages_a_missing_return():
    """A seed whose every logging point closed no episode is None in per_seed and left out of the mean."""
    config = Config(scenario="bps-4a-2c", method="fups", num_seeds=2, num_envs=2, hidden_sizes=(8,),
                    num_logs=2, total_steps=40)
    env = envs.make(config.scenario)
    trainer = trainer_module.make_train(config, env)
    state = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.PRNGKey(0), 2))
    rows = [{"method": "fups", "seed": s, "log": log, "return_mean": v}
            for s, values in enumerate([[-3.0, math.nan], [math.nan, math.nan]]) for log, v in enumerate(values)]
    entry = training.summarise(trainer, state, rows, "fups", {"wall_seconds": 1.0})
    assert entry["train_return_per_seed"] == [-3.0, None]
    assert entry["train_return_mean"] == entry["train_return_min"] == entry["train_return_max"] == -3.0
    assert entry["train_return_seeds"] == 1
    assert "over 1 of 2 seeds" in describe("fups", entry)
    json.loads(json.dumps(entry, allow_nan=False))  # no NaN anywhere
    rows = [{**r, "return_mean": math.nan} for r in rows]
    entry = training.summarise(trainer, state, rows, "fups", {"wall_seconds": 1.0})
    assert entry["train_return_per_seed"] == [None, None] and entry["train_return_mean"] is None
    assert "no episode finished" in describe("fups", entry)
    with pytest.raises(ValueError):
        results.write_json(Path("unused.json"), {"x": math.nan})  # refused before any file is opened


# ---- atomic files and checkpoints (no training) --------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    results.write_atomic(path, "old\n")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        results.write_atomic(path, "new\n")
    assert path.read_text() == "old\n"


def test_metric_values_survive_the_csv_exactly(tmp_path):
    values = [1 / 3, -1007.8798828125, 1e-12, 123456789.123, math.inf]
    rows = [{"method": "m", "seed": 0, "log": i, "env_steps": 1, "wall_seconds": 0.0, "episodes": 1,
             "return_mean": results.metric_value(v), "entropy": math.nan} for i, v in enumerate(values)]
    results.write_metrics(tmp_path / "m.csv", rows, [])
    back = results.read_metrics(tmp_path / "m.csv")
    assert [r["return_mean"] for r in back] == [r["return_mean"] for r in rows]
    assert all(math.isnan(r["entropy"]) for r in back)


def test_background_writer_saves_the_state_of_its_call_even_after_donation(tmp_path, monkeypatch):
    """The next chunk donates the state's device buffers while the writer is still writing: what
    is saved must be the state as it was when save() was called."""
    real_save = checkpoint.save

    def slow_save(*args, **kwargs):  # the donation below happens before the files are written
        time.sleep(0.5)
        real_save(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    directory = tmp_path / "checkpoints" / "fups"
    expected = {"w": np.arange(4096.0), "step": np.int32(7)}
    state = {"w": jnp.arange(4096.0), "step": jnp.int32(7)}  # never read on the host (that would cache a copy)
    writer = checkpoint.Writer()
    writer.save(directory, state, 3, "mark", extra={"wall_seconds": 2.5})
    overwrite = jax.jit(lambda s: jax.tree.map(lambda x: x * 0 - 1, s), donate_argnums=0)
    overwrite(state)  # reuses (and so overwrites) the buffers of `state`
    writer.wait()
    restored, logs = checkpoint.restore(directory, jax.tree.map(np.zeros_like, expected), "mark")
    np.testing.assert_array_equal(restored["w"], expected["w"])
    assert int(restored["step"]) == 7 and logs == 3
    assert checkpoint.meta(directory)["wall_seconds"] == 2.5


def test_background_writer_raises_a_failed_save_in_the_caller(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = checkpoint.Writer()
    writer.save(blocker / "checkpoints" / "fups", {"w": np.zeros(3)}, 1, "mark")
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # the error is raised once; the writer can be used again
    writer.save(tmp_path / "ok", {"w": np.ones(3)}, 1, "mark")
    writer.wait()
    assert checkpoint.saved_logs(tmp_path / "ok") == 1


def test_a_failed_last_save_does_not_hide_the_error_training_stops_with(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = checkpoint.Writer()
    writer.save(blocker / "checkpoints" / "fups", {"w": np.zeros(3)}, 1, "mark")
    leaving = FloatingPointError("non-finite loss")
    writer.finish(leaving)  # no raise: the training's own error goes on, carrying the save's
    assert len(leaving.__notes__) == 1 and leaving.__notes__[0].startswith("the last checkpoint save failed too")
    writer.save(blocker / "checkpoints" / "fups", {"w": np.zeros(3)}, 1, "mark")
    with pytest.raises(OSError):
        writer.finish(None)  # nothing else going wrong: the save's error is the one raised


def test_checkpoint_swap_interrupted_between_renames_still_restores(tmp_path):
    directory = tmp_path / "checkpoints" / "fups"
    first, second = {"w": np.arange(3.0)}, {"w": np.arange(3.0) + 10}
    checkpoint.save(directory, first, 1, "mark")
    # A kill between the two renames of the next save leaves only <dir>.old and a complete <dir>.tmp.
    directory.rename(directory.with_name("fups.old"))
    state, logs = checkpoint.restore(directory, {"w": np.zeros(3)}, "mark")
    np.testing.assert_array_equal(state["w"], first["w"])
    assert logs == 1
    checkpoint.save(directory, second, 2, "mark")
    assert sorted(p.name for p in directory.parent.iterdir()) == ["fups"]
    state, logs = checkpoint.restore(directory, {"w": np.zeros(3)}, "mark")
    np.testing.assert_array_equal(state["w"], second["w"])
    with pytest.raises(checkpoint.CheckpointError, match="different run configuration"):
        checkpoint.restore(directory, {"w": np.zeros(3)}, "another run")
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        checkpoint.restore(directory, {"w": np.zeros(4)}, "mark")


def test_checkpoints_work_under_a_relative_results_path(tmp_path, monkeypatch):
    """orbax refuses relative paths; `--out results/x` is what users type."""
    monkeypatch.chdir(tmp_path)
    checkpoint.save(Path("results/run/checkpoints/fups"), {"w": np.arange(3.0)}, 1, "mark")
    state, logs = checkpoint.restore(Path("results/run/checkpoints/fups"), {"w": np.zeros(3)}, "mark")
    np.testing.assert_array_equal(state["w"], np.arange(3.0))
    assert logs == 1


@pytest.mark.slow  # minutes of compilation; `make test-slow`
def test_a_diverged_identity_phase_stops_the_run_instead_of_training_as_fups(tmp_path, capsys):
    """A VAE that diverges gives NaN identity vectors; k-means would then put every agent in one
    cluster and AdaPS would silently train as FuPS."""
    out = tmp_path / "run"
    code = _main([*ADAPS, "--set", "vae_learning_rate=1e30", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1].startswith("error: non-finite parameters or identity vectors in method adaps, seed ")
    assert "(logging point 0)" in err.splitlines()[-1]
    assert not (out / "summary.json").exists()


def test_seeds_beyond_32_bits_are_refused():
    with pytest.raises(ConfigError, match=r"seed=4294967296 is outside 0\.\.4294967295"):
        Config(seed=2**32).validate()


def test_two_different_runs_started_into_one_new_folder_at_once(sandbox):
    """The folder is locked before config.json is written: one run wins and its config.json says
    what it trained; the other stops with one line and changes nothing."""
    out = sandbox.root / "race"
    procs = [sandbox.start([*FUPS, "--steps", str(steps), "--out", str(out)], sandbox.root / f"race-{steps}.log")
             for steps in (2000, 2400)]
    codes = [p.wait(timeout=TIMEOUT) for p in procs]
    assert sorted(codes) == [0, 2], codes
    loser = (2000, 2400)[codes.index(2)]
    last = (sandbox.root / f"race-{loser}.log").read_text().strip().splitlines()[-1]
    assert last.startswith("error:") and ("in use" in last or "different run" in last), last
    winner = (2000, 2400)[codes.index(0)]
    config = results.read_json(out / "config.json")
    assert config["config"]["total_steps"] == winner
    assert results.read_summary(out)["fups"]["env_steps"] <= winner
    assert max(r["env_steps"] for r in results.read_metrics(out / "metrics.csv")) == results.read_summary(out)["fups"]["env_steps"]


def test_the_loser_of_a_race_into_a_new_folder_leaves_it_to_the_winner(tmp_path, monkeypatch, capsys):
    """The race above, made deterministic: this run creates the folder, then another process locks
    it first. This run stops with "in use" and must not remove the (still empty) folder, which
    would pull it from under the winner."""
    out = tmp_path / "race"
    make_folder = run_module.make_folder
    with contextlib.ExitStack() as winner:
        def created_then_taken(path: Path) -> bool:
            created = make_folder(path)
            winner.enter_context(folder_lock(path))  # a second open file: flock refuses this process too
            return created

        monkeypatch.setattr(run_module, "make_folder", created_then_taken)
        code = run_module.main([*FUPS, "--out", str(out)])
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert code == 2 and last.startswith("error:") and "in use" in last, last
        assert out.is_dir() and not any(out.iterdir())


def test_resume_refuses_a_finished_method_whose_rows_are_gone(sandbox, fups_reference, tmp_path):
    """summary.json says fups finished, but metrics.csv lost its rows: refused, nothing changed."""
    folder = tmp_path / "lost-rows"
    shutil.copytree(fups_reference, folder)
    (folder / "metrics.csv").unlink()
    before = (folder / "summary.json").read_bytes()
    code = sandbox.run(["--resume", str(folder), "--no-plots"], tmp_path / "lost.log")
    last = (tmp_path / "lost.log").read_text().strip().splitlines()[-1]
    assert code == 2 and last.startswith("error:") and "lacks 20 of the 20 rows of fups" in last, last
    assert (folder / "summary.json").read_bytes() == before and not (folder / "metrics.csv").exists()

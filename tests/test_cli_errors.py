"""Bad input to experiments.run: one line on stderr starting with 'error:', naming the bad value and
what is allowed, exit code 2, and nothing already written lost or overwritten."""
from __future__ import annotations

import fcntl
import json
import os
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from adaps_jax.trainer import make_train, seed_keys
from experiments import checkpoint, folder, results
from experiments import run as run_module
from experiments.description import RunDescription, code_version

TINY = ["--env", "bps", "--method", "fups", "--seeds", "2", "--num-envs", "2", "--steps", "1600",
        "--set", "hidden_sizes=16", "--set", "num_logs=8", "--no-plots"]


def fail(argv: list[str], capsys) -> str:
    """Runs the command, which must fail as bad input; its one stderr line."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    code = run_module.main([str(a) for a in argv])
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


# (arguments, words the message must contain: the bad value and the allowed values)
NEW_RUN_ERRORS = {
    "unknown env": (["--env", "gridworld"], ["'gridworld'", "bps", "crware", "lbf"]),
    "no env": (["--method", "fups"], ["--env", "--scenario"]),
    "unknown scenario": (["--scenario", "bps-nope"], ["'bps-nope'", "bps-15a-3c", "lbf-8x8-3p-2f"]),
    "impossible scenario": (["--scenario", "bps-7a-2c"], ["bps-7a-2c", "multiple"]),
    "unknown method": (["--env", "bps", "--method", "fups", "magic"], ["'magic'", "all", "adaps", "snp_ps"]),
    "zero steps": ([*TINY, "--steps", "0"], ["--steps", "'0'", "positive integer"]),
    "negative steps": ([*TINY, "--steps", "-5"], ["--steps", "'-5'", "positive integer"]),
    "fractional steps": ([*TINY, "--steps", "2.5"], ["--steps", "'2.5'", "positive integer"]),
    "absurd steps": ([*TINY, "--steps", "1e13"], ["total_steps=10000000000000", "1..1000000000000"]),
    "too few steps": ([*TINY, "--steps", "70"], ["total_steps=70", "8 logging points", "raise total_steps"]),
    "zero seeds": ([*TINY, "--seeds", "0"], ["--seeds", "'0'", "positive integer"]),
    "absurd seeds": ([*TINY, "--seeds", "100000"], ["num_seeds=100000", "1..4096"]),
    "unreadable seeds": ([*TINY, "--seeds", "two"], ["--seeds", "'two'", "positive integer"]),
    "zero envs": ([*TINY, "--num-envs", "0"], ["--num-envs", "'0'", "positive integer"]),
    "absurd envs": ([*TINY, "--num-envs", "10000000"], ["num_envs=10000000", "1..65536"]),
    "K above agents": ([*TINY, "--method", "adaps", "--set", "num_clusters=16", "--set", "pretrain_steps=200"],
                       ["num_clusters=16", "15 agents", "1..15"]),
    "K zero": ([*TINY, "--set", "num_clusters=0"], ["num_clusters", "0", "positive"]),
    "lambda one": ([*TINY, "--set", "mask_threshold=1"], ["mask_threshold", "1.0", "(0, 1)"]),
    "lambda zero": ([*TINY, "--set", "mask_threshold=0"], ["mask_threshold", "0.0", "(0, 1)"]),
    "lambda nan": ([*TINY, "--set", "mask_threshold=nan"], ["mask_threshold", "nan", "(0, 1)"]),
    "infinite learning rate": ([*TINY, "--set", "learning_rate=inf"], ["learning_rate", "inf", "finite"]),
    "nan coefficient": ([*TINY, "--set", "entropy_coef=nan"], ["entropy_coef", "nan", "finite"]),
    "unknown --set key": ([*TINY, "--set", "learning_rat=0.1"], ["'learning_rat'", "learning_rate", "num_envs"]),
    "--set without =": ([*TINY, "--set", "learning_rate"], ["'learning_rate'", "KEY=VALUE"]),
    "unparsable --set value": ([*TINY, "--set", "num_envs=eight"], ["num_envs='eight'", "int", "for example num_envs=8"]),
    "unparsable widths": ([*TINY, "--set", "hidden_sizes=6x4"], ["hidden_sizes='6x4'", "for example hidden_sizes=64,64"]),
    "overflowing --set value": ([*TINY, "--set", "num_logs=1e400"], ["num_logs='1e400'", "too large"]),
    "method through --set": ([*TINY, "--set", "method=nops"], ["method", "--method"]),
    "unknown flag": ([*TINY, "--bogus"], ["--bogus"]),
    "empty scenario": (["--scenario", ""], ["--scenario is empty", "bps", "crware", "lbf"]),
    "huge BPS": (["--scenario", "bps-99999999999999999999a-1c"], ["agents must be at most 100000", "99999999999999999999"]),
    "huge LBF grid": (["--scenario", "lbf-100000x100000-2p-1f"], ["grid rows must be at most 1024", "100000"]),
    "seed beyond 32 bits": ([*TINY, "--set", "seed=4294967296"], ["seed=4294967296", "0..4294967295"]),
    "seed 1e30": ([*TINY, "--set", "seed=1e30"], ["seed=1000000000000000019884624838656", "0..4294967295"]),
    "absurd widths": ([*TINY, "--set", "hidden_sizes=100000000"], ["hidden_sizes=100000000", "1..65536 neurons"]),
    "int beyond int32": ([*TINY, "--set", "eval_episodes=99999999999"], ["eval_episodes=99999999999", "2147483647"]),
    "sweep of a shape": ([*TINY, "--sweep", "hidden_sizes=8,16"], ["hidden_sizes", "learning_rate"]),
}


@pytest.mark.parametrize("argv, words", list(NEW_RUN_ERRORS.values()), ids=list(NEW_RUN_ERRORS))
def test_bad_new_run_is_one_line_and_writes_nothing(argv, words, tmp_path, capsys):
    out = tmp_path / "run"
    line = fail([*argv, "--out", out], capsys)
    for word in words:
        assert word in line
    assert not out.exists()


@pytest.mark.parametrize("content, words", [
    ("{\"learning_rate\": 0.1,", ["cannot read config file", "line 1"]),
    ("[1, 2]", ["JSON object", "list"]),
    ("{\"learning_rat\": 0.1}", ["'learning_rat'", "learning_rate"]),
    ("{\"num_envs\": \"eight\"}", ["num_envs", "'eight'", "int"]),
    ("{\"hidden_sizes\": [16, true]}", ["hidden_sizes", "tuple"]),
    ("{\"scenario\": \"bps-30a-3c\"}", ["scenario", "--scenario"]),
], ids=["truncated", "not an object", "unknown field", "wrong type", "wrong widths", "scenario"])
def test_corrupt_config_file(content, words, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(content)
    line = fail([*TINY, "--config", path, "--out", tmp_path / "run"], capsys)
    assert str(path) in line or "'learning_rat'" in line or "hidden_sizes" in line or "num_envs" in line
    for word in words:
        assert word in line
    assert not (tmp_path / "run").exists()


def test_oversized_integer_in_config_file(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text("{\"seed\": 1000000000000000000000000000000, \"eval_episodes\": 10}")
    line = fail([*TINY, "--config", path, "--out", tmp_path / "run"], capsys)
    assert "seed=1000000000000000000000000000000" in line and "0..4294967295" in line
    assert not (tmp_path / "run").exists()


def test_output_name_too_long(tmp_path, capsys):
    line = fail([*TINY, "--out", tmp_path / ("x" * 300)], capsys)
    assert "300 bytes" in line and "at most 255" in line
    assert list(tmp_path.iterdir()) == []


def test_missing_config_file(tmp_path, capsys):
    line = fail([*TINY, "--config", tmp_path / "nope.json", "--out", tmp_path / "run"], capsys)
    assert "nope.json" in line and "No such file" in line


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    line = fail([*TINY, "--out", blocker / "run"], capsys)
    assert f"cannot write to output folder {blocker / 'run'}" in line and "writable" in line
    line = fail([*TINY, "--out", blocker], capsys)
    assert str(blocker) in line and "is a file" in line
    assert blocker.read_text() == "keep me\n"


def test_read_only_output_folder(tmp_path, capsys):
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        if _writable(parent):
            pytest.skip("running as root: permissions do not stop writes")
        line = fail([*TINY, "--out", parent / "run"], capsys)
        assert f"cannot write to output folder {parent / 'run'}" in line
    finally:
        parent.chmod(0o700)


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


# ---- folders that hold results ------------------------------------------------------------------


@pytest.fixture
def run_folder(tmp_path) -> Path:
    """A results folder of TINY as it is after 3 logging points of fups, without training anything:
    config.json written by the real code, metrics and summary files standing in for results."""
    out = tmp_path / "existing"
    args = run_module.build_parser().parse_args([*TINY, "--out", str(out)])
    run = run_module.resolve_run(args)
    folder.make_folder(out)
    folder.prepare_folder(run)
    rows = [{"method": "fups", "seed": s, "log": log, "env_steps": 200 * (log + 1), "wall_seconds": 1.0,
             "episodes": 4, "return_mean": -100.0 + log, "entropy": 1.6, "actor_loss": 0.1, "value_loss": 2.0}
            for log in range(3) for s in range(2)]
    results.write_metrics(out / "metrics.csv", rows, [])
    return out


def test_new_run_into_a_folder_of_another_run_touches_nothing(run_folder, capsys):
    before = snapshot(run_folder)
    line = fail([*TINY, "--set", "learning_rate=0.1", "--out", run_folder], capsys)
    assert f"{run_folder} holds a different run (differing in config.learning_rate)" in line
    assert f"--resume {run_folder}" in line
    assert snapshot(run_folder) == before


def test_new_run_into_a_folder_that_is_not_a_results_folder(tmp_path, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious\n")
    before = snapshot(folder)
    line = fail([*TINY, "--out", folder], capsys)
    assert str(folder) in line and "not a results folder" in line
    assert snapshot(folder) == before


def test_new_run_into_a_folder_with_corrupt_config(run_folder, capsys):
    (run_folder / "config.json").write_text("{\"scenario\": ")
    before = snapshot(run_folder)
    line = fail([*TINY, "--out", run_folder], capsys)
    assert "unreadable config.json" in line and "another --out" in line
    assert snapshot(run_folder) == before


def test_resume_with_new_run_flags(run_folder, capsys):
    before = snapshot(run_folder)
    line = fail(["--resume", run_folder, "--steps", "3200", "--set", "seed=3"], capsys)
    assert "drop --steps, --set" in line and f"{run_folder}" in line
    assert snapshot(run_folder) == before


def test_resume_of_other_code_version(run_folder, capsys):
    run = results.read_json(run_folder / "config.json")
    results.write_json(run_folder / "config.json", {**run, "code_version": "0123456789abcdef"})
    before = snapshot(run_folder)
    line = fail(["--resume", run_folder], capsys)
    assert "code version 0123456789abcdef" in line and code_version() in line
    assert snapshot(run_folder) == before


@pytest.mark.parametrize("change, words", [
    (lambda run: "{\"methods\": [", ["config.json is corrupt", "JSONDecodeError"]),
    (lambda run: json.dumps({k: v for k, v in run.items() if k != "config"}), ["config.json is corrupt", "'config'"]),
    (lambda run: json.dumps({**run, "methods": ["magic"]}), ["config.json is corrupt", "magic", "adaps"]),
    (lambda run: json.dumps({**run, "config": {**run["config"], "num_envs": -1}}), ["config.json is corrupt", "num_envs"]),
    (lambda run: json.dumps({**run, "config": {**run["config"], "bogus": 1}}), ["config.json is corrupt", "'bogus'"]),
], ids=["truncated", "no config", "unknown method", "impossible value", "unknown field"])
def test_resume_of_corrupt_config(run_folder, change, words, capsys):
    (run_folder / "config.json").write_text(change(results.read_json(run_folder / "config.json")))
    before = snapshot(run_folder)
    line = fail(["--resume", run_folder], capsys)
    for word in words:
        assert word in line
    assert snapshot(run_folder) == before


def test_resume_of_a_folder_without_results(tmp_path, capsys):
    line = fail(["--resume", tmp_path / "nothing-here"], capsys)
    assert "nothing-here" in line and "not a results folder" in line


def test_resume_with_missing_checkpoint(run_folder, capsys):
    before = snapshot(run_folder)
    line = fail(["--resume", run_folder], capsys)
    assert "metrics.csv has 3 logging points of fups" in line and "is missing" in line
    assert snapshot(run_folder) == before


@pytest.mark.parametrize("damage, words", [
    ("meta", ["corrupt", "meta.json"]),
    ("state", ["corrupt"]),
    ("fingerprint", ["different run configuration"]),
])
def test_resume_with_corrupt_checkpoint(run_folder, damage, words, capsys):
    ckpt = run_folder / "checkpoints" / "fups"
    (ckpt / "state").mkdir(parents=True)
    meta = {"logs_done": 3, "fingerprint": RunDescription.load(run_folder).fingerprint("fups")}
    if damage == "meta":
        (ckpt / "meta.json").write_text("{\"logs_do")
    else:
        (ckpt / "meta.json").write_text(json.dumps({**meta, "fingerprint": "x"} if damage == "fingerprint" else meta))
        (ckpt / "state" / "garbage").write_bytes(b"\x00\x01not orbax")
    before = snapshot(run_folder)
    line = fail(["--resume", run_folder], capsys)
    assert str(ckpt) in line
    for word in words:
        assert word in line
    assert snapshot(run_folder) == before


def test_resume_with_missing_metrics_rows(run_folder, capsys):
    """A checkpoint ahead of metrics.csv would leave holes in the results: refused."""
    rows = [r for r in results.read_metrics(run_folder / "metrics.csv") if r["log"] < 2]
    results.write_metrics(run_folder / "metrics.csv", rows, [])
    # A checkpoint of the right shapes (zeros) that has done 3 logging points.
    run = RunDescription.load(run_folder)
    trainer = make_train(run.config)
    abstract = jax.eval_shape(jax.vmap(trainer.init), seed_keys(0, 2))
    state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract)
    checkpoint.save(run_folder / "checkpoints" / "fups", state, 3, run.fingerprint("fups"))
    before = snapshot(run_folder)
    line = fail(["--resume", run_folder], capsys)
    assert "metrics.csv lacks 2 rows of fups" in line and "(0, 2)" in line
    assert snapshot(run_folder) == before


def test_folder_in_use_by_another_run(run_folder, capsys):
    handle = os.open(run_folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = fail(["--resume", run_folder], capsys)
    finally:
        os.close(handle)
    assert f"{run_folder} is in use" in line


def test_same_command_again_continues_the_run_and_keeps_its_results(run_folder, capsys):
    """Not an error: a folder holding this very run is continued (here: nothing left to do)."""
    summary = {"fups": {"final_return_mean": -98.0, "per_seed": [-98.0, -98.0]}}
    results.write_json(run_folder / "summary.json", summary)
    rows = [{"method": "fups", "seed": s, "log": log, "env_steps": 200 * (log + 1), "wall_seconds": 1.0,
             "episodes": 4, "return_mean": -100.0 + log, "entropy": 1.6, "actor_loss": 0.1, "value_loss": 2.0}
            for log in range(8) for s in range(2)]  # a finished method has every logging point's rows
    results.write_metrics(run_folder / "metrics.csv", rows, [])
    before = snapshot(run_folder)
    assert run_module.main([*TINY, "--out", str(run_folder)]) == 0
    err = capsys.readouterr().err
    assert "already holds this run: continuing it" in err and "fups: already finished, skipped" in err
    assert snapshot(run_folder) == before


def test_a_run_beyond_the_machines_memory_is_refused_before_it_runs(tmp_path, capsys):
    """XLA's memory analysis of the compiled programs against the available memory: exit 1, one
    line with the estimate, and no folder left behind (the run never started)."""
    out = tmp_path / "huge"
    code = run_module.main(["--scenario", "lbf-8x8-3p-2f", "--method", "fups", "--seeds", "4096", "--num-envs",
                            "65536", "--steps", "400000000", "--no-plots", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert lines[-1].startswith("error: initialisation needs about") and "GiB" in lines[-1] and "free" in lines[-1]
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert not out.exists()


def test_a_failed_checkpoint_write_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    """orbax reports a full disk as other exceptions than OSError (a ValueError among them): the
    run stops with one line naming the failed write and how to resume, exit 1."""
    from experiments import checkpoint as checkpoint_module

    class FullDisk:
        def save(self, *args, **kwargs):
            raise ValueError("[Errno 28] No space left on device\nand 400 more lines")

    monkeypatch.setattr(checkpoint_module, "_checkpointer", lambda: FullDisk())
    out = tmp_path / "run"
    code = run_module.main([*TINY, "--out", str(out)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1
    assert "writing checkpoint" in errors[0] and "No space left on device" in errors[0] and "--resume" in errors[0]
    assert (out / "config.json").exists()  # the run had started: its folder stays, to be resumed

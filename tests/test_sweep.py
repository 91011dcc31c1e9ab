"""Sweeps: every value of a numeric field trained side by side in one compiled program, each value
as its own run (up to float rounding: XLA compiles a larger batch with other instruction orders),
with its values in metrics.csv and its own summary entry."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaps_jax.config import Config
from adaps_jax.trainer import make_train
from experiments import results
from experiments.training import TIMING_FIELDS
from experiments import run as run_module
from experiments.description import RunDescription

TINY = Config(scenario="lbf-8x8-3p-2f", num_seeds=2, num_envs=4, total_steps=2000, num_logs=2, pretrain_steps=1000,
              identity_samples=256, vae_epochs=1, eval_episodes=2, hidden_sizes=(16, 16))


@pytest.mark.parametrize("method, field, values", [
    pytest.param("adaps", "mask_threshold", (0.1, 0.6), marks=pytest.mark.slow),  # the identity phase: minutes
    pytest.param("snp_ps", "pruning_rate", (0.25, 0.75), marks=pytest.mark.slow),  # the command-line test is fast
])
def test_swept_values_train_exactly_as_their_own_runs(method, field, values):
    config = TINY.replace(method=method)
    trainer = make_train(config)
    base = config.hyperparams()
    hparams = jax.tree.map(lambda v: jnp.full((2,), v, jnp.float32), base)._replace(
        **{field: jnp.asarray(values, jnp.float32)})
    keys = jnp.stack([jax.random.PRNGKey(3)] * 2)
    state, metrics = jax.jit(jax.vmap(trainer.train))(keys, hparams)
    for i, value in enumerate(values):
        alone = make_train(config.replace(**{field: value}))
        single, single_metrics = jax.jit(alone.train)(keys[0])
        np.testing.assert_allclose(np.asarray(metrics.return_sum[i]), np.asarray(single_metrics.return_sum), rtol=1e-5)
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(single.params)):
            np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=2e-3, atol=1e-4)
    # The values differ in what they do: the two runs are not the same run.
    assert not np.array_equal(np.asarray(metrics.actor_loss[0]), np.asarray(metrics.actor_loss[1]))


def test_variants_sweep_only_the_fields_a_method_uses():
    run = RunDescription("lbf-8x8-3p-2f", "quick", ("adaps", "fups", "snp_ps"), "x", Config(), "v",
                         {"mask_threshold": (0.1, 0.2), "learning_rate": (1e-3,)})
    assert [v.name for v in run.variants()] == [
        "adaps[mask_threshold=0.1,learning_rate=0.001]", "adaps[mask_threshold=0.2,learning_rate=0.001]",
        "fups[learning_rate=0.001]", "snp_ps[learning_rate=0.001]"]
    assert run.config_of(run.variants()[1]).mask_threshold == 0.2


SWEEP_ARGS = ["--scenario", "lbf-8x8-3p-2f", "--method", "fups", "--seeds", "2", "--steps", "1600", "--num-envs", "2",
              "--set", "num_logs=2", "--set", "eval_episodes=1", "--set", "hidden_sizes=8", "--no-plots"]


@pytest.mark.slow  # minutes of compilation; `make test-slow`
def test_sweep_on_the_command_line_equals_single_value_runs(tmp_path):
    assert run_module.main([*SWEEP_ARGS, "--sweep", "learning_rate=0.0003,0.01", "--out", str(tmp_path / "sweep")]) == 0
    rows = results.read_metrics(tmp_path / "sweep" / "metrics.csv")
    summary = results.read_summary(tmp_path / "sweep")
    assert list(summary) == ["fups[learning_rate=0.0003]", "fups[learning_rate=0.01]"]
    for value in (0.01,):  # the second value: its rows are not simply the first rows of the sweep
        name = f"fups[learning_rate={value:g}]"
        assert run_module.main([*SWEEP_ARGS, "--set", f"learning_rate={value}", "--out", str(tmp_path / name)]) == 0
        alone = results.read_metrics(tmp_path / name / "metrics.csv")
        mine = [r for r in rows if r["method"] == name]
        assert all(r["learning_rate"] == value for r in mine)
        assert [(r["seed"], r["log"], r["episodes"]) for r in mine] == [(r["seed"], r["log"], r["episodes"]) for r in alone]
        for column in ("return_mean", "entropy", "actor_loss", "value_loss", "eval_return_greedy"):
            np.testing.assert_allclose([r[column] for r in mine], [r[column] for r in alone], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("sweep, words", [
    ("hidden_sizes=8,16", "not a field that can be swept"),
    ("learning_rate=fast", "must be numbers"),
    ("mask_threshold=0.1,0.2", "none of the methods fups uses it"),
    ("learning_rate=0.1,0.1", "each value once"),
    ("gamma=0.9,2", "gamma must be in [0, 1]"),
])
def test_bad_sweeps_are_one_line_errors(tmp_path, capsys, sweep, words):
    out = tmp_path / "never"
    assert run_module.main([*SWEEP_ARGS, "--sweep", sweep, "--out", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error:") and words in line and "\n" not in line
    assert not out.exists()


def test_a_stopped_sweep_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """All values of a sweep share one checkpoint (their swept values inside the state): stopped
    after its second logging point and resumed, the sweep ends with the uninterrupted one's rows."""
    args = [*SWEEP_ARGS, "--set", "num_logs=4", "--sweep", "learning_rate=0.0003,0.01"]
    assert run_module.main([*args, "--out", str(tmp_path / "whole")]) == 0
    from experiments.console import StopRequest

    checks = {"count": 0}

    def requested(self):  # a stop request arrives after the second logging point
        checks["count"] += 1
        return checks["count"] > 2

    monkeypatch.setattr(StopRequest, "requested", property(requested))
    assert run_module.main([*args, "--out", str(tmp_path / "stopped")]) == 130
    assert not (tmp_path / "stopped" / "summary.json").exists()
    monkeypatch.undo()
    assert run_module.main(["--resume", str(tmp_path / "stopped"), "--no-plots"]) == 0

    def rows(folder):
        return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in results.read_metrics(folder / "metrics.csv")]

    assert rows(tmp_path / "stopped") == rows(tmp_path / "whole")
    summaries = [{name: {k: v for k, v in entry.items() if k not in TIMING_FIELDS} for name, entry in
                  results.read_summary(tmp_path / folder).items()} for folder in ("stopped", "whole")]
    assert summaries[0] == summaries[1]

"""experiments.stats: hand-computed IQM, probability of improvement, AUC, normalisation and intervals;
the numpy code against rliable (when it imports); method_statistics on hand-written metrics rows."""
import json
import math

import numpy as np
import pytest

from experiments import stats

nan = math.nan
needs_rliable = pytest.mark.skipif(not stats.rliable_available(), reason="rliable (the stats extra) does not import")


# ---- point estimates, by hand -------------------------------------------------------------------


@pytest.mark.parametrize("scores, expected", [
    ([1, 2, 3, 4], 2.5),  # one value cut from each end
    ([5, 1, 100, 2, 3], 10 / 3),  # int(5/4) = 1 cut: mean of 2, 3, 5
    ([1, 2, 9], 4.0),  # int(3/4) = 0: the plain mean
    ([[1, 10], [2, 20], [3, 30], [4, 40]], 9.25),  # flattened over tasks: mean of 3, 4, 10, 20
    ([[1, nan], [2, 20], [3, 30]], 25 / 3),  # the missing run is left out: 1, 2, 3, 20, 30 -> mean of 2, 3, 20
])
def test_iqm_by_hand(scores, expected):
    assert stats.iqm(scores) == pytest.approx(expected, abs=1e-12)


def test_iqm_matches_scipy_trim_mean():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (2, 1), (3, 2), (5, 3), (6, 1), (7, 4), (10, 2)]:
        x = rng.normal(size=shape)
        assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25, axis=None), abs=1e-12)


def test_probability_of_improvement_by_hand():
    # 3 beats 1, ties 3, loses to 5: 1.5; 4 beats 1 and 3: 2; so 3.5 of 6 pairs.
    assert stats.probability_of_improvement([3, 4], [1, 3, 5]) == pytest.approx(3.5 / 6, abs=1e-15)
    assert stats.probability_of_improvement([1, 3, 5], [3, 4]) == pytest.approx(2.5 / 6, abs=1e-15)
    assert stats.probability_of_improvement([1, 2, 3], [2, 2]) == 0.5
    # Two tasks: 7/12 on the first, 0 on the second, averaged.
    assert stats.probability_of_improvement([[3, 0], [4, 0]], [[1, 1], [3, 1], [5, 1]]) == pytest.approx(7 / 24, abs=1e-15)
    with pytest.raises(stats.StatsInputError, match="tasks"):
        stats.probability_of_improvement([[1, 2]], [[1, 2, 3]])


def test_auc_is_the_mean_over_logging_points():
    got = stats.auc([[1, 2, 3], [nan, 4, 6], [nan, nan, nan]])
    assert got[:2].tolist() == [2.0, 5.0] and math.isnan(got[2])


def test_normalise_min_max_per_task_over_all_methods():
    out = stats.normalise({"a": [[0, 10], [5, 10]], "b": [[10, 10], [nan, 10]]})
    assert out["a"].tolist() == [[0.0, 0.5], [0.5, 0.5]]  # task 1: every run equal -> 0.5
    assert out["b"][0].tolist() == [1.0, 0.5] and math.isnan(out["b"][1, 0])
    with pytest.raises(stats.StatsInputError, match="same tasks"):
        stats.normalise({"a": [[1, 2]], "b": [[1, 2, 3]]})


@pytest.mark.parametrize("bad, match", [
    ([], "non-empty"), ([[[1.0]]], "shape"), ([1.0, math.inf], "infinity"), ([[nan, 1.0]], "no score"),
])
def test_bad_scores(bad, match):
    with pytest.raises(stats.StatsInputError, match=match):
        stats.iqm_interval(bad, backend="numpy")


def test_unknown_backend_names_the_allowed_ones():
    with pytest.raises(stats.StatsInputError, match="allowed: auto, numpy, rliable"):
        stats.iqm_interval([1.0, 2.0], backend="scipy")


# ---- intervals ----------------------------------------------------------------------------------


def test_iqm_interval_hand_cases():
    assert stats.iqm_interval([7.5], backend="numpy") == (7.5, [7.5, 7.5])
    assert stats.iqm_interval([2.0, 2.0, 2.0], backend="numpy") == (2.0, [2.0, 2.0])
    # Resamples of {0, 1}: means 0, 1/2, 1 with chance 1/4, 1/2, 1/4; the 2.5% and 97.5% points are 0 and 1.
    assert stats.iqm_interval([0.0, 1.0], backend="numpy") == (0.5, [0.0, 1.0])
    # Stratified: the second task's runs are never mixed into the first's.
    point, (low, high) = stats.iqm_interval([[0.0, 100.0], [0.0, 100.0]], backend="numpy")
    assert (point, low, high) == (50.0, 50.0, 50.0)


def test_probability_of_improvement_interval_hand_cases():
    assert stats.probability_of_improvement_interval([1.0], [0.0], backend="numpy") == (1.0, [1.0, 1.0])
    # P is the share of X's resampled runs above 0.5: 0, 1/2 or 1.
    assert stats.probability_of_improvement_interval([0.0, 1.0], [0.5], backend="numpy") == (0.5, [0.0, 1.0])


def test_intervals_are_reproducible_and_cover_the_point():
    x = np.random.default_rng(0).normal(size=(8, 3))
    y = x + 0.3
    first = stats.iqm_interval(x, backend="numpy")
    assert stats.iqm_interval(x, backend="numpy") == first
    assert stats.iqm_interval(x, backend="numpy", seed=1) != first
    assert first[1][0] < first[0] < first[1][1]
    p, (low, high) = stats.probability_of_improvement_interval(y, x, backend="numpy")
    assert stats.probability_of_improvement_interval(y, x, backend="numpy") == (p, [low, high])
    assert 0 <= low < p < high <= 1


def test_ragged_tasks_resample_each_task_own_runs():
    # Task 0 has runs 0 and 1 (NaN is a missing seed), task 1 a single run: the resampled IQM of
    # {a, b, 10} with a, b from {0, 1} is (a + b + 10) / 3.
    point, (low, high) = stats.iqm_interval([[0.0, 10.0], [1.0, nan]], backend="numpy")
    assert point == pytest.approx(11 / 3)
    assert (low, high) == (pytest.approx(10 / 3), pytest.approx(12 / 3))


# ---- numpy against rliable ----------------------------------------------------------------------


@needs_rliable
def test_numpy_matches_rliable():
    from rliable import metrics

    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(10, 3)), rng.normal(0.4, 1.0, size=(8, 3))
    y[0, 0] = x[0, 0]  # a tie
    assert stats.iqm(x) == metrics.aggregate_iqm(x)
    assert stats.probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-15)
    for fn, args in ((stats.iqm_interval, (x,)), (stats.probability_of_improvement_interval, (x, y))):
        p_np, ci_np = fn(*args, backend="numpy")
        p_rl, ci_rl = fn(*args, backend="rliable")
        assert p_np == pytest.approx(p_rl, abs=1e-12)
        width = ci_rl[1] - ci_rl[0]
        # Only the resampling randomness differs: a few percent of the width at 2000 resamples.
        assert abs(ci_np[0] - ci_rl[0]) < 0.15 * width and abs(ci_np[1] - ci_rl[1]) < 0.15 * width, (ci_np, ci_rl)


@needs_rliable
def test_rliable_backend_is_reproducible_and_leaves_the_global_generator_alone():
    x = np.random.default_rng(1).normal(size=(5, 2))
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = stats.iqm_interval(x, backend="rliable", reps=200)
    assert np.random.random() == expected_next
    assert stats.iqm_interval(x, backend="rliable", reps=200) == first
    assert stats.iqm_interval(x, backend="auto", reps=200) == first  # auto picks rliable when it imports
    with pytest.raises(stats.StatsInputError, match="no NaN"):
        stats.iqm_interval([[1.0, nan], [2.0, 3.0]], backend="rliable")


# ---- results-folder summaries -------------------------------------------------------------------


def _row(method, seed, log, greedy=None, sampled=None, types=None):
    row = {"method": method, "seed": seed, "log": log, "env_steps": 100 * (log + 1), "wall_seconds": 1.0,
           "episodes": 3, "return_mean": -1.0, "entropy": 1.0, "actor_loss": 0.0, "value_loss": 0.0}
    if greedy is not None:
        row["eval_return_greedy"] = greedy
        row["eval_return_sampled"] = sampled
        for t, v in enumerate(types):
            row[f"eval_return_greedy_type_{t}"] = v
            row[f"eval_return_sampled_type_{t}"] = v - 1
    return row


def eval_rows():
    """Method "a": seeds 0-2 at logs 0-2 (seed 2 has no final greedy value); seed 3 stopped after log 0.
    Method "b": two seeds. Two agent types whose greedy returns add up to the team's."""
    greedy = {0: [1.0, 2.0, 3.0], 1: [2.0, 4.0, 9.0], 2: [0.0, 6.0, nan], 3: [5.0]}
    rows = []
    for seed, values in greedy.items():
        for log, g in enumerate(values):
            rows.append(_row("a", seed, log, g, g - 1, [g / 4, 3 * g / 4]))
    for seed, values in {0: [0.0, 1.0], 1: [0.0, 2.0]}.items():
        for log, g in enumerate(values):
            rows.append(_row("b", seed, log, g, g, [g, 0.0]))
    return rows


def test_method_statistics_by_hand():
    s = stats.method_statistics(eval_rows(), "a", 2, backend="numpy")
    assert s["per_seed_final"] == [3.0, 9.0, None, 5.0]  # seed 3's last logging point is log 0
    assert s["final_return_seeds"] == 3
    assert s["final_return_mean"] == pytest.approx(17 / 3)
    assert s["final_return_iqm"] == pytest.approx(17 / 3)  # 3 values: nothing is cut
    low, high = s["final_return_ci95"]
    assert 3.0 <= low < 17 / 3 < high <= 9.0
    # AUC per seed: 2, 5, 3 (seed 2 over its two values), 5.
    assert s["auc_return_mean"] == pytest.approx(15 / 4)
    assert s["auc_return_iqm"] == pytest.approx(4.0)  # 4 values: mean of 3 and 5
    assert s["sampled"]["per_seed_final"] == [2.0, 8.0, None, 4.0]
    assert s["sampled"]["final_return_iqm"] == pytest.approx(14 / 3)
    assert len(s["per_type"]) == 2
    assert s["per_type"][0]["final_return_iqm"] == pytest.approx(17 / 12)
    assert s["per_type"][1]["final_return_iqm"] == pytest.approx(17 / 4)
    assert set(s["per_type"][0]) == {"final_return_iqm", "final_return_ci95", "auc_return_iqm", "auc_return_ci95"}
    json.dumps(s, allow_nan=False)  # JSON-safe: no NaN anywhere


def test_method_statistics_without_eval_columns_and_without_values():
    old = [_row("a", seed, log) for seed in range(2) for log in range(3)]
    s = stats.method_statistics(old, "a", 3, backend="numpy")
    assert s["final_return_iqm"] is None and s["final_return_ci95"] is None and s["per_seed_final"] is None
    assert s["sampled"] is None and s["per_type"] is None
    json.dumps(s, allow_nan=False)
    all_nan = [_row("a", 0, log, nan, nan, [nan]) for log in range(2)]
    s = stats.method_statistics(all_nan, "a", 1, backend="numpy")
    assert s["final_return_seeds"] == 0 and s["per_seed_final"] == [None]
    assert s["final_return_iqm"] is None and s["per_type"][0]["auc_return_iqm"] is None
    json.dumps(s, allow_nan=False)
    with pytest.raises(stats.StatsInputError, match="num_types"):
        stats.method_statistics(all_nan, "a", -1)


def test_probability_of_improvement_table_by_hand():
    rows = eval_rows()
    table = stats.probability_of_improvement_table(rows, ["a", "b", "c"], backend="numpy")
    # finals: a = 3, 9, 5 (seed 2 missing); b = 1, 2: a beats b in all 6 pairs.
    assert table["a"]["b"] == {"p": 1.0, "ci95": [1.0, 1.0]}
    assert table["b"]["a"] == {"p": 0.0, "ci95": [0.0, 0.0]}
    assert table["a"]["c"] == {"p": None, "ci95": None} and table["c"]["b"] == {"p": None, "ci95": None}
    assert "a" not in table["a"]
    rows = [r for r in rows if r["method"] == "a" and r["seed"] < 2] + [
        {**r, "method": "b", "eval_return_greedy": [1.0, 3.0, 5.0][r["seed"]]}
        for r in rows if r["method"] == "a" and r["seed"] < 3]
    # a's finals 3, 9 against b's 1, 3, 5: 3 beats 1, ties 3; 9 beats all three: 4.5 of 6.
    table = stats.probability_of_improvement_table(rows, ["a", "b"], backend="numpy")
    assert table["a"]["b"]["p"] == pytest.approx(0.75)
    assert table["b"]["a"]["p"] == pytest.approx(0.25)
    low, high = table["a"]["b"]["ci95"]
    assert table["b"]["a"]["ci95"] == [pytest.approx(1 - high), pytest.approx(1 - low)]

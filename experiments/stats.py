"""The field's statistics for few-seed RL results (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice"): interquartile mean, stratified bootstrap confidence intervals, probability
of improvement, area under the curve, and per-scenario normalisation.

Scores follow rliable's layout: one matrix per method shaped (runs, tasks), a run being a seed and a
task a scenario. NaN marks a missing run of one task (a seed that logged no value); such entries are
left out, so tasks may hold different numbers of runs.

The statistics come from the numpy code here by default; `backend="rliable"` (the `stats` extra)
or `"auto"` (rliable when it imports) uses the field's library instead. The two give identical
point estimates and intervals that differ only by bootstrap randomness (tests/test_stats.py checks
both). numpy is the default because rliable 1.2's bootstrap is a Python loop over resamples: the
summary of a 6-method run took 30 s with it and 0.05 s here, and it imports only with arch < 8 and
pandas < 3. Matrices with NaN always use numpy: rliable's bootstrap needs the same number of runs
in every task.

    method_statistics(rows, method, num_types)          the run summary of one method (JSON-safe)
    probability_of_improvement_table(rows, methods)     P(a > b) with its interval, every ordered pair
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np

RESAMPLES = 2000  # bootstrap resamples: the 2.5% and 97.5% percentiles move by well under 1% of the spread beyond this
SEED = 0  # fixed, so the same results folder always gives the same intervals
CONFIDENCE = 0.95
BACKENDS = ("auto", "numpy", "rliable")
GREEDY = "eval_return_greedy"
SAMPLED = "eval_return_sampled"

_rliable_modules: tuple | None = None
_rliable_tried = False


class StatsInputError(ValueError):
    """Scores the statistics cannot use (wrong shape, no values, unknown backend)."""


# ---- backend ------------------------------------------------------------------------------------


def rliable_available() -> bool:
    return _rliable() is not None


def _rliable():
    """(library, metrics) of rliable, or None. Imported on first use: it pulls in pandas and arch,
    seconds of start-up that runs never needing a statistic should not pay. Any exception counts as
    missing because a broken install (arch against a pandas it does not support) raises TypeError."""
    global _rliable_modules, _rliable_tried
    if not _rliable_tried:
        _rliable_tried = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from rliable import library, metrics
            _rliable_modules = (library, metrics)
        except Exception:  # noqa: BLE001 - see the docstring
            _rliable_modules = None
    return _rliable_modules


def _use_rliable(backend: str, *matrices: np.ndarray) -> bool:
    if backend not in BACKENDS:
        raise StatsInputError(f"unknown backend {backend!r} (allowed: {', '.join(BACKENDS)})")
    if backend == "numpy":
        return False
    if backend == "rliable":
        if _rliable() is None:
            raise StatsInputError("backend 'rliable' asked for but rliable does not import: pip install 'adaps-jax[stats]'")
        if any(np.isnan(m).any() for m in matrices):
            raise StatsInputError("backend 'rliable' needs every run of every task (no NaN)")
        return True
    return _rliable() is not None and not any(np.isnan(m).any() for m in matrices)


# ---- inputs -------------------------------------------------------------------------------------


def as_scores(scores: Any) -> np.ndarray:
    """A (runs, tasks) float matrix; a 1-D sequence is one task. StatsInputError when it is not a
    matrix, holds an infinity, or a task has no value at all."""
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise StatsInputError(f"scores must be a non-empty (runs, tasks) matrix, got shape {x.shape}")
    if np.isinf(x).any():
        raise StatsInputError("scores hold an infinity")
    if np.isnan(x).all(axis=0).any():
        raise StatsInputError("a task has no score (every run is NaN)")
    return x


def _columns(x: np.ndarray) -> list[np.ndarray]:
    """The finite runs of each task."""
    return [col[~np.isnan(col)] for col in x.T]


# ---- point estimates ----------------------------------------------------------------------------


def _trim_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of the middle half along `axis`: int(n/4) values cut from each end, as
    scipy.stats.trim_mean(x, 0.25) does (so with n = 5 or 6, one value goes from each end)."""
    n = values.shape[axis]
    cut = int(0.25 * n)
    ordered = np.sort(values, axis=axis)
    return np.take(ordered, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def iqm(scores: Any) -> float:
    """Interquartile mean over all runs of all tasks together (rliable's aggregate_iqm)."""
    x = as_scores(scores)
    finite = x[~np.isnan(x)]
    return float(_trim_mean(finite))


def _poi_point(x: np.ndarray, y: np.ndarray) -> float:
    per_task = [_pair_matrix(a, b).mean() for a, b in zip(_columns(x), _columns(y))]
    return float(np.mean(per_task))


def _pair_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 where a run of X beats a run of Y, 1/2 for a tie: the Mann-Whitney U statistic / (n m)."""
    return (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])


def probability_of_improvement(scores_x: Any, scores_y: Any) -> float:
    """P(X > Y): per task the chance that a random run of X scores above a random run of Y (ties
    count half), averaged over tasks; rliable's probability_of_improvement."""
    x, y = as_scores(scores_x), as_scores(scores_y)
    if x.shape[1] != y.shape[1]:
        raise StatsInputError(f"X has {x.shape[1]} tasks and Y {y.shape[1]}: they must match")
    return _poi_point(x, y)


def auc(curves: Any) -> np.ndarray:
    """Area under each run's curve, normalised: the mean of its values over the logging points (the
    trapezoid area divided by the span, up to the end points' half weight). Evenly spaced logging
    points make it proportional to the area; dividing by their number keeps it on the return's scale.

    curves: (runs, logging points); a NaN point is left out of its run's mean; a run with no value
    gives NaN."""
    c = np.asarray(curves, dtype=float)
    if c.ndim != 2:
        raise StatsInputError(f"curves must be a (runs, logging points) matrix, got shape {c.shape}")
    counts = (~np.isnan(c)).sum(axis=1)
    sums = np.where(np.isnan(c), 0.0, c).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def normalise(scores_by_method: dict[str, Any]) -> dict[str, np.ndarray]:
    """Min-max normalisation per task over every method's runs: 0 is the worst run any method had on
    that task, 1 the best. Chosen over a reference score (random or expert policy) because these
    scenarios have none published; the price is that the scale depends on the methods compared. A
    task where every run scored the same maps to 0.5: no method is told apart there."""
    mats = {m: as_scores(s) for m, s in scores_by_method.items()}
    if not mats:
        raise StatsInputError("no methods to normalise")
    tasks = {x.shape[1] for x in mats.values()}
    if len(tasks) != 1:
        raise StatsInputError(f"every method needs the same tasks, got task counts {sorted(tasks)}")
    stacked = np.concatenate(list(mats.values()), axis=0)
    low, high = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
    span = high - low
    out = {}
    for m, x in mats.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[m] = np.where(span > 0, (x - low) / np.where(span > 0, span, 1.0), 0.5)
        out[m][np.isnan(x)] = np.nan
    return out


# ---- stratified bootstrap -----------------------------------------------------------------------


def _resample(x: np.ndarray, reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per task, `reps` resamples of its finite runs drawn with replacement: (reps, runs of the task)."""
    return [col[rng.integers(0, col.size, size=(reps, col.size))] for col in _columns(x)]


def _percentile_interval(samples: np.ndarray) -> list[float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return [float(low), float(high)]


def _check_reps(reps: int) -> None:
    if not isinstance(reps, int) or reps < 1:
        raise StatsInputError(f"reps must be a positive integer, got {reps!r}")


def _rliable_interval(score_args: list[np.ndarray], func: Callable, reps: int, seed: int) -> list[float]:
    """rliable's percentile interval. Its bootstrap draws from NumPy's global generator (it ignores
    random_state), so the global state is seeded for the call and put back afterwards."""
    library, _ = _rliable()
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = score_args[0] if len(score_args) == 1 else score_args
            _, intervals = library.get_interval_estimates({"x": data}, lambda *a: np.array([func(*a)]),
                                                          reps=reps, confidence_interval_size=CONFIDENCE)
    finally:
        np.random.set_state(state)
    low, high = intervals["x"][:, 0]
    return [float(low), float(high)]


def iqm_interval(scores: Any, *, reps: int = RESAMPLES, seed: int = SEED, backend: str = "numpy") -> tuple[float, list[float]]:
    """IQM and its 95% stratified bootstrap percentile interval: runs resampled with replacement
    within each task, independently per task."""
    x = as_scores(scores)
    _check_reps(reps)
    if _use_rliable(backend, x):
        _, metrics = _rliable()
        return float(metrics.aggregate_iqm(x)), _rliable_interval([x], metrics.aggregate_iqm, reps, seed)
    rng = np.random.default_rng(seed)
    samples = _trim_mean(np.concatenate(_resample(x, reps, rng), axis=1), axis=1)
    return iqm(x), _percentile_interval(samples)


def probability_of_improvement_interval(scores_x: Any, scores_y: Any, *, reps: int = RESAMPLES, seed: int = SEED,
                                        backend: str = "numpy") -> tuple[float, list[float]]:
    """P(X > Y) and its 95% stratified bootstrap interval: the runs of X and those of Y resampled
    independently, within each task."""
    x, y = as_scores(scores_x), as_scores(scores_y)
    if x.shape[1] != y.shape[1]:
        raise StatsInputError(f"X has {x.shape[1]} tasks and Y {y.shape[1]}: they must match")
    _check_reps(reps)
    if _use_rliable(backend, x, y):
        _, metrics = _rliable()
        return (float(metrics.probability_of_improvement(x, y)),
                _rliable_interval([x, y], metrics.probability_of_improvement, reps, seed))
    rng = np.random.default_rng(seed)
    per_task = []
    for a, b in zip(_columns(x), _columns(y)):
        wins = _pair_matrix(a, b)
        ia = rng.integers(0, a.size, size=(reps, a.size))
        ib = rng.integers(0, b.size, size=(reps, b.size))
        per_task.append(wins[ia[:, :, None], ib[:, None, :]].mean(axis=(1, 2)))
    return _poi_point(x, y), _percentile_interval(np.mean(per_task, axis=0))


# ---- results-folder summaries -------------------------------------------------------------------


def _finite_or_none(x: Any) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _seed_curves(rows: list[dict], method: str, column: str) -> tuple[list[int], np.ndarray] | None:
    """Seeds and their (seeds, logging points) values of one column; None when no row has the column."""
    mine = [r for r in rows if r.get("method") == method]
    if not mine or not any(column in r for r in mine):
        return None
    seeds = sorted({r["seed"] for r in mine})
    logs = sorted({r["log"] for r in mine})
    values = np.full((len(seeds), len(logs)), np.nan)
    for r in mine:
        v = r.get(column)
        if isinstance(v, (int, float)):
            values[seeds.index(r["seed"]), logs.index(r["log"])] = v
    last = {s: max(r["log"] for r in mine if r["seed"] == s) for s in seeds}
    finals = np.array([values[i, logs.index(last[s])] for i, s in enumerate(seeds)])
    return seeds, np.column_stack([finals, auc(values)])


def _summary_of(values: np.ndarray, reps: int, seed: int, backend: str) -> tuple[float | None, float | None, list | None]:
    """Mean, IQM and interval of the finite values; None for each when there is none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None, None
    point, interval = iqm_interval(finite, reps=reps, seed=seed, backend=backend)
    return float(np.mean(finite)), point, interval


_RETURN_KEYS = ("final_return_mean", "final_return_iqm", "final_return_ci95", "auc_return_mean", "auc_return_iqm",
                "auc_return_ci95", "final_return_seeds", "per_seed_final")
_TYPE_KEYS = ("final_return_iqm", "final_return_ci95", "auc_return_iqm", "auc_return_ci95")


def _column_statistics(rows: list[dict], method: str, column: str, reps: int, seed: int, backend: str) -> dict:
    got = _seed_curves(rows, method, column)
    if got is None:
        return dict.fromkeys(_RETURN_KEYS)
    _, per_seed = got
    finals, aucs = per_seed[:, 0], per_seed[:, 1]
    f_mean, f_iqm, f_ci = _summary_of(finals, reps, seed, backend)
    a_mean, a_iqm, a_ci = _summary_of(aucs, reps, seed, backend)
    return {
        "final_return_mean": f_mean, "final_return_iqm": f_iqm, "final_return_ci95": f_ci,
        "auc_return_mean": a_mean, "auc_return_iqm": a_iqm, "auc_return_ci95": a_ci,
        "final_return_seeds": int(np.isfinite(finals).sum()),
        "per_seed_final": [_finite_or_none(v) for v in finals],
    }


def method_statistics(rows: list[dict], method: str, num_types: int, *, reps: int = RESAMPLES, seed: int = SEED,
                      backend: str = "numpy") -> dict:
    """The test-return statistics of one method of a run, from metrics.csv rows (results.read_metrics).

    From `eval_return_greedy`: final_return_mean / _iqm / _ci95 over seeds of each seed's value at its
    last logging point (a seed whose final value is NaN is left out; final_return_seeds counts the rest,
    per_seed_final lists every seed with None for a missing value), and auc_return_mean / _iqm / _ci95
    of each seed's mean over its logging points (see `auc`). `sampled`: the same from
    `eval_return_sampled`. `per_type`: per agent type t the IQMs and intervals from
    `eval_return_greedy_type_{t}`. Columns the rows lack (results written before evaluation was
    logged) give None: every key for the greedy return, and `sampled` or `per_type` as a whole.
    Every number is a float or None, so the result goes to JSON as is.
    """
    if not isinstance(num_types, int) or num_types < 0:
        raise StatsInputError(f"num_types must be a non-negative integer, got {num_types!r}")
    out = _column_statistics(rows, method, GREEDY, reps, seed, backend)
    mine = [r for r in rows if r.get("method") == method]
    has = lambda column: any(column in r for r in mine)  # noqa: E731
    out["sampled"] = _column_statistics(rows, method, SAMPLED, reps, seed, backend) if has(SAMPLED) else None
    type_columns = [f"{GREEDY}_type_{t}" for t in range(num_types)]
    if num_types and all(has(c) for c in type_columns):
        out["per_type"] = [{k: s[k] for k in _TYPE_KEYS}
                           for s in (_column_statistics(rows, method, c, reps, seed, backend) for c in type_columns)]
    else:
        out["per_type"] = None
    return out


def final_scores(rows: list[dict], method: str, column: str = GREEDY) -> np.ndarray:
    """Each seed's value of `column` at its last logging point, NaN where missing; empty when the
    method or the column is absent."""
    got = _seed_curves(rows, method, column)
    return np.empty(0) if got is None else got[1][:, 0]


def probability_of_improvement_table(rows: list[dict], methods: Sequence[str], *, reps: int = RESAMPLES,
                                     seed: int = SEED, backend: str = "numpy") -> dict[str, dict[str, dict]]:
    """{a: {b: {"p": P(a > b), "ci95": [low, high]}}} for every ordered pair of different methods, on
    the seeds' final greedy test return (one task). Each unordered pair is bootstrapped once and its
    reverse read off it (P(b > a) = 1 - P(a > b), interval mirrored), so the table is consistent.
    A method without a finite final value gives None for p and ci95 of its pairs."""
    finals = {m: final_scores(rows, m) for m in methods}
    finals = {m: v[np.isfinite(v)] for m, v in finals.items()}
    table: dict[str, dict[str, dict]] = {m: {} for m in methods}
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            if a == b:
                continue
            if finals[a].size == 0 or finals[b].size == 0:
                table[a][b] = table[b][a] = {"p": None, "ci95": None}
                continue
            p, (low, high) = probability_of_improvement_interval(finals[a], finals[b], reps=reps, seed=seed,
                                                                 backend=backend)
            table[a][b] = {"p": p, "ci95": [low, high]}
            table[b][a] = {"p": 1.0 - p, "ci95": [1.0 - high, 1.0 - low]}
    return table

"""The progress line: env-steps per second over all seeds, without compilation or the identity
phase, and a time left that holds from the second logging point on."""
from __future__ import annotations

import re

import numpy as np

from experiments.bench import time_left
from experiments.console import Progress

LINE = re.compile(r"([\d,]+)/([\d,]+) steps\s+([\d,]+|--) steps/s\s+left (\d+|--):(\d\d|--)")


def _shown(err: str) -> list[tuple[int, float, float]]:
    """(steps per seed, env-steps/s shown, seconds left shown) of every progress line."""
    out = []
    for match in LINE.finditer(err):
        rate = float("nan") if match[3] == "--" else float(match[3].replace(",", ""))
        left = float("inf") if match[4] == "--" else 60 * int(match[4]) + int(match[5])
        out.append((int(match[1].replace(",", "")), rate, left))
    return out


def test_rate_counts_all_seeds_and_leaves_out_untimed_chunks(capsys):
    progress = Progress("fups", total_steps=1000, num_seeds=4)
    progress.update(100, 100, 50.0, timed=False, mean_return=0.0)  # compiled something: not a rate
    progress.update(200, 100, 2.0, timed=True, mean_return=0.0)
    progress.update(300, 100, 2.0, timed=True, mean_return=0.0)
    lines = _shown(capsys.readouterr().err)
    assert np.isnan(lines[0][1]) and lines[0][2] == float("inf")
    assert lines[1][1] == lines[2][1] == 200  # 100 steps x 4 seeds in 2 s
    assert lines[2][2] == 14  # 700 steps per seed left at 50 per second


def test_time_left_is_within_20_percent_from_the_second_logging_point(capsys):
    """A simulated run: the identity chunk is slow and untimed, later chunks vary by +-15% around
    their mean (as on a shared machine), and the machine slows by 10% halfway."""
    rng = np.random.default_rng(0)
    logs, per_log = 100, 100_000
    seconds = rng.uniform(0.85, 1.15, logs) * 12.0
    seconds[logs // 2:] *= 1.1
    seconds[1] = 90.0  # ends the pretraining and runs the identity phase
    progress = Progress("adaps", total_steps=logs * per_log, num_seeds=4)
    for log in range(logs):
        progress.update((log + 1) * per_log, per_log, float(seconds[log]), timed=log != 1, mean_return=0.0)
    shown = _shown(capsys.readouterr().err)
    for log in range(2, logs - 1):
        actual = seconds[log + 1:].sum()
        assert abs(shown[log][2] - actual) <= 0.2 * actual + 1, (log, shown[log][2], actual)


def test_one_stalled_chunk_does_not_throw_off_the_time_left(capsys):
    """A process paused for 20 minutes in one chunk: the chunks after it are timed as before."""
    logs, per_log = 40, 100_000
    seconds = np.full(logs, 12.0)
    seconds[3] = 1200.0
    progress = Progress("seps", total_steps=logs * per_log, num_seeds=4)
    for log in range(logs):
        progress.update((log + 1) * per_log, per_log, float(seconds[log]), timed=True, mean_return=0.0)
    shown = _shown(capsys.readouterr().err)
    for log in range(4, logs - 1):
        actual = seconds[log + 1:].sum()
        assert abs(shown[log][2] - actual) <= 0.2 * actual + 1, (log, shown[log][2], actual)


def test_replay_of_a_runs_chunk_times_compares_each_estimate_with_the_real_rest():
    """Chunks of 10 s, one of 70 s (a burst of other work) at logging point 5: from point 2 on the
    estimate is 10 s per remaining chunk, and the real rest is exact except before the burst."""
    walls = np.cumsum([30.0] + [70.0 if log == 5 else 10.0 for log in range(1, 12)])
    rows = [{"method": "fups", "seed": 0, "log": log, "env_steps": 1000 * (log + 1), "wall_seconds": w}
            for log, w in enumerate(walls)] + [{"method": "fups", "seed": 1, "log": 0, "env_steps": 1000,
                                                "wall_seconds": 0.0}]
    estimates = time_left.replay(rows, "fups")
    assert [log for log, _, _ in estimates] == list(range(2, 11))
    for log, estimate, actual in estimates:
        assert actual == walls[-1] - walls[log]
        assert estimate == 10 * (11 - log)  # the median of the recent chunks ignores the burst
    assert time_left.main(["/nonexistent", "fups"]) == 2

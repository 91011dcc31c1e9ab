"""How right the progress line's "time left" was in a finished run: its chunk times (from
metrics.csv's `wall_seconds`) replayed through `experiments.console.Progress`, each estimate
compared with the time the run really took from there to its end.

    python -m experiments.bench.time_left docs/results/bps-15a-3c-paper snp_ps
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from experiments import results
from experiments.cli import OneLineArgumentParser
from experiments.console import Progress


def replay(rows: list[dict], method: str) -> list[tuple[int, float, float]]:
    """(logging point, estimated seconds left, actual seconds left) from the second timed logging point
    to the one before the last. A logging point's chunk time is the difference of consecutive
    `wall_seconds` (seed 0's rows; the first point, which includes start-up and compilation, only
    starts the clock)."""
    mine = sorted((r for r in rows if r["method"] == method and r["seed"] == 0), key=lambda r: r["log"])
    if len(mine) < 4:
        raise ValueError(f"{method} has {len(mine)} logging points; at least 4 are needed")
    walls = np.array([r["wall_seconds"] for r in mine], float)
    steps = [int(r["env_steps"]) for r in mine]
    progress = Progress(method, steps[-1], num_seeds=1)  # the seeds count only in the shown rate
    out = []
    for k in range(1, len(mine) - 1):
        progress.record(steps[k] - steps[k - 1], float(walls[k] - walls[k - 1]))
        if k >= 2:
            out.append((mine[k]["log"], progress.seconds_left(steps[k]), float(walls[-1] - walls[k])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python -m experiments.bench.time_left", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a results folder written by experiments.run")
    parser.add_argument("method", help="a method (or swept variant) of that folder")
    args = parser.parse_args(argv)
    if not (Path(args.folder) / "metrics.csv").is_file():
        print(f"error: {args.folder}: no metrics.csv (not a results folder)", file=sys.stderr)
        return 2
    try:
        rows = results.read_metrics(Path(args.folder) / "metrics.csv")
        estimates = replay(rows, args.method)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {args.folder}: {err}".splitlines()[0], file=sys.stderr)
        return 2
    errors = np.array([(estimate - actual) / actual for _, estimate, actual in estimates])
    worst = int(np.argmax(np.abs(errors)))
    print(f"{args.method}: time left within 20% at {int(np.sum(np.abs(errors) <= 0.2))} of {len(errors)} logging "
          f"points (from the second timed one); median error {np.median(np.abs(errors)):.1%}; worst "
          f"{errors[worst]:+.1%} at logging point {estimates[worst][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a run shows and hears while it trains: progress lines, Ctrl-C / SIGTERM, TensorBoard."""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections import deque
from pathlib import Path

import numpy as np

from experiments.cli import UsageError


class Progress:
    """What a method's training shows on stderr: a line at once ("compiling ..."), then one line
    per logging point (a live bar on a terminal) with steps, env-steps per second over all seeds,
    time left and the mean training return.

    The rate is the median over the last `window` chunks that compiled nothing (compilation and
    the identity phase have their own lines): the time left is the training's from the second
    logging point on, follows a machine whose load changes, and is not thrown off by one stalled
    chunk (a paused process, a burst of other work).
    """

    window = 10

    def __init__(self, label: str, total_steps: int, num_seeds: int):
        self.label, self.total, self.num_seeds = label, total_steps, num_seeds
        self.live = sys.stderr.isatty()
        self.recent: deque[float] = deque(maxlen=self.window)  # steps per second per seed, timed chunks

    def note(self, text: str) -> None:
        """A line of its own, at once (compiling, identity phase, resumed)."""
        if self.live:
            print(file=sys.stderr)
        print(f"{self.label}: {text}", file=sys.stderr, flush=True)

    def record(self, chunk_steps: int, chunk_seconds: float) -> None:
        """A chunk that compiled nothing: its steps per seed and seconds count towards the rate."""
        if chunk_seconds > 0:
            self.recent.append(chunk_steps / chunk_seconds)

    def rate(self) -> float:
        """Steps per second per seed (NaN before the first timed chunk)."""
        return float(np.median(self.recent)) if self.recent else math.nan

    def seconds_left(self, steps: int) -> float:
        """Seconds until `total` steps per seed at the current rate (inf before there is one)."""
        rate = self.rate()
        return (self.total - steps) / rate if rate > 0 else math.inf

    def update(self, steps: int, chunk_steps: int, chunk_seconds: float, timed: bool, mean_return: float) -> None:
        """After a logging point: `steps` per seed so far; the chunk's own steps and seconds count
        towards the rate when `timed` (nothing was compiled in it)."""
        if timed:
            self.record(chunk_steps, chunk_seconds)
        rate, left = self.rate(), self.seconds_left(steps)
        done = steps / self.total
        bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
        shown = f"{rate * self.num_seeds:>9,.0f}" if math.isfinite(rate) else f"{'--':>9}"
        text = (f"{self.label:<8} [{bar}] {steps:>11,}/{self.total:,} steps  {shown} steps/s  "
                f"left {duration(left)}  return {mean_return:8.2f}")
        print("\r" + text if self.live else text, end="" if self.live else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=sys.stderr)


def duration(seconds: float) -> str:
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


def summary_writer_class():
    """tensorboardX's SummaryWriter; a UsageError with the install hint when it is missing (checked
    before the run folder is touched, so a missing package costs nothing)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UsageError("--tensorboard needs tensorboardX: pip install 'adaps-jax[logging]'") from None
    return SummaryWriter


def tensorboard_writer(out: Path):
    """A writer of OUT/tensorboard: per logging point and method, every metric as a scalar per seed
    (`<method>/<metric>/seed<k>`) and as the mean over the seeds that have a number
    (`<method>/<metric>/mean`), at x = environment steps per seed."""
    summary_writer = summary_writer_class()
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


def describe(method: str, entry: dict) -> str:
    """The one line printed when a method finishes."""
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

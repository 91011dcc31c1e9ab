"""The results folder: atomic file writes, metrics rows and the per-method summary.

Layout of a run folder:
    config.json       the resolved run (methods, seeds, every config field, code version)
    metrics.csv       one row per method, seed and logging point: the training episodes' mean
                      team return (`return_mean`), the test returns of whole evaluation episodes
                      (`eval_return_greedy`, `eval_return_sampled`), losses, and per agent type
    summary.json      per method: final returns, model size, clusters, diversity, wall time
    checkpoints/      the latest state of every method (see experiments.checkpoint)
    plots/            learning curves and model sizes (experiments.plot)
Every file is written to a temporary name and renamed, so a reader (or a kill -9) never sees
half a file. Metric values are kept to 8 significant digits (`metric_value`) both in memory and
in metrics.csv, so a run resumed from the file computes exactly what an uninterrupted run does.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

METRIC_FIELDS = ["method", "seed", "log", "env_steps", "wall_seconds", "episodes", "return_mean",
                 "entropy", "actor_loss", "value_loss", "eval_return_greedy", "eval_return_sampled"]


REQUIRED_FIELDS = ["method", "seed", "log", "env_steps"]  # without them rows mean nothing


def type_columns(num_types: int) -> list[str]:
    """The per-agent-type columns of metrics.csv: training return, then greedy and sampled test return."""
    return [f"{prefix}_type_{t}" for prefix in ("return", "eval_return_greedy", "eval_return_sampled")
            for t in range(num_types)]


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file, fsync and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Writes `data` as JSON, atomically. NaN or infinity raise ValueError: a missing number is null."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_summary(folder: Path) -> dict:
    """A run folder's summary.json, {} before any method finished. ValueError with a one-line reason
    when it is unreadable or not an object of methods."""
    path = folder / "summary.json"
    if not path.exists():
        return {}
    try:
        summary = read_json(path)
    except OSError as err:
        raise ValueError(str(err)) from None
    if not isinstance(summary, dict):
        raise ValueError("not an object of methods")
    return summary


# The types of summary.json's fields that readers format (None is allowed for each: a missing number).
SUMMARY_NUMBERS = ("final_return_mean", "final_return_iqm", "final_return_min", "final_return_max",
                   "train_return_mean", "train_return_min", "train_return_max", "env_steps", "params",
                   "relative_size", "policy_diversity_mean", "wall_seconds", "auc_return_iqm")
SUMMARY_NUMBER_LISTS = ("num_clusters", "cluster_ari", "policy_diversity", "train_return_per_seed",
                        "mask_overlap_mean", "params_per_seed")


def check_summary(summary: dict) -> None:
    """ValueError (one line, naming the entry and field) for a summary.json value of the wrong type."""
    def number(x) -> bool:
        return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))

    for name, entry in summary.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: must be an object of results, got {type(entry).__name__}")
        interval = entry.get("final_return_ci95")
        if not number(entry.get("final_return_iqm")) or (interval is not None and not (
                isinstance(interval, list) and len(interval) == 2 and all(map(number, interval)))):
            raise ValueError(f"{name}: final_return_iqm must be a number and final_return_ci95 [low, high], got "
                             f"{entry.get('final_return_iqm')!r} and {interval!r}")
        for key in SUMMARY_NUMBERS:
            if not number(entry.get(key)):
                raise ValueError(f"{name}: {key} must be a number, got {entry[key]!r}")
        for key in SUMMARY_NUMBER_LISTS:
            value = entry.get(key)
            if value is not None and not (isinstance(value, list) and all(number(v) for v in value)):
                raise ValueError(f"{name}: {key} must be a list of numbers, got {value!r}")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def metric_value(x: float) -> float:
    """A metric as metrics.csv stores it: 8 significant digits (NaN for a missing value)."""
    return float(f"{float(x):.8g}")


def write_metrics(path: Path, rows: list[dict], type_columns: Iterable[str], sweep: Iterable[str] = ()) -> None:
    """All rows, atomically; `sweep`: the swept fields, a column each (their values in each row)."""
    fields = METRIC_FIELDS + list(type_columns) + list(sweep)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})
    write_atomic(path, buffer.getvalue())


def _cell(x: Any) -> Any:
    if isinstance(x, float):
        return "" if math.isnan(x) else repr(metric_value(x))
    return "" if x is None else x


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.csv with numbers parsed (missing values as NaN)."""
    if not Path(path).exists():
        return []
    with open(path) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        missing = [c for c in REQUIRED_FIELDS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
    parsed = []
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key == "method":
                out[key] = value
            elif key in ("seed", "log", "env_steps", "episodes"):
                out[key] = int(value)
            else:
                out[key] = float(value) if value != "" else math.nan
        parsed.append(out)
    return parsed


class UnreadableResults(ValueError):
    """A results folder's metrics.csv or summary.json cannot be read; `name` says which file."""

    def __init__(self, name: str, reason: str):
        super().__init__(reason)
        self.name = name


def read_rows_and_summary(folder: Path) -> tuple[list[dict], dict]:
    """A results folder's metrics.csv rows and summary.json ({} before any method finished)."""
    try:
        rows = read_metrics(Path(folder) / "metrics.csv")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UnreadableResults("metrics.csv", f"{type(err).__name__}: {err}") from None
    try:
        summary = read_summary(folder)
    except ValueError as err:
        raise UnreadableResults("summary.json", str(err)) from None
    return rows, summary


def last_finite(values: list[float]) -> float:
    """The last logged value that is a number (a logging point may close no episode)."""
    for v in reversed(values):
        if not math.isnan(v):
            return v
    return math.nan

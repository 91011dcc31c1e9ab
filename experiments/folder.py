"""The life of a results folder: created, locked, given its config.json, checked before it continues.

A folder holds one run (experiments.description): a new run takes an empty or new folder, the same
run continues in its own folder, and a folder of another run is never touched. The lock comes
before anything is written, so two runs started into one new folder at the same instant cannot
both write config.json: the second stops with "in use". File formats: experiments.results.
"""
from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from experiments import results
from experiments import checkpoint
from experiments.checkpoint import CheckpointError
from experiments.cli import UsageError
from experiments.description import RunDescription

NAME_MAX = 255  # bytes in one path component on the usual file systems


def make_folder(out: Path) -> bool:
    """Creates the output folder (so that it can be locked before anything is written in it);
    whether it was new."""
    too_long = [part for part in out.parts if len(part.encode()) > NAME_MAX]
    if too_long:
        raise UsageError(f"--out {out}: the name {too_long[0][:40]}... has {len(too_long[0].encode())} bytes; "
                         f"allowed: at most {NAME_MAX} per folder name")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; choose a folder")
    try:
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write to output folder {out}: {err.strerror or err}; choose a writable --out") from None
    return created


def remove_if_empty(out: Path) -> None:
    """Removes a folder this process created when nothing was written in it (a run that never started)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()


@contextmanager
def folder_lock(out: Path):
    """One process at a time per results folder: a lock on the folder itself, which the system
    releases with the process, even on kill -9."""
    handle = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{out} is in use by another running experiments.run; wait for it or stop it") from None
        yield
    finally:
        os.close(handle)


def prepare_folder(run: RunDescription) -> None:
    """The config.json of a new run in its (locked) folder, or the same run found there."""
    out = Path(run.out)
    config_path = out / "config.json"
    if config_path.exists():
        try:
            old = RunDescription.from_json(results.read_json(config_path), str(config_path))
        except (OSError, ValueError) as err:
            raise UsageError(f"{out} holds an unreadable config.json ({err}); choose another --out".splitlines()[0]) from None
        diff = old.differences(run)
        if diff:
            shown = ", ".join(diff[:5]) + (", ..." if len(diff) > 5 else "")
            raise UsageError(f"{out} holds a different run (differing in {shown}); choose another --out, "
                             f"or continue that run with --resume {out}")
        print(f"{out} already holds this run: continuing it", file=sys.stderr)
        return
    if any(out.iterdir()):
        raise UsageError(f"--out {out} is a non-empty folder without config.json (not a results folder); "
                         "choose a new or empty folder")
    try:
        run.save(config_path)
    except OSError as err:
        raise UsageError(f"cannot write to output folder {out}: {err.strerror or err}; choose a writable --out") from None


def read_results(out: Path) -> tuple[list[dict], dict]:
    """The rows and summary already in a run folder."""
    try:
        return results.read_rows_and_summary(out)
    except results.UnreadableResults as err:
        raise UsageError(f"{out}/{err.name} is corrupt ({err}); cannot continue this run".splitlines()[0]) from None


def check_rows(rows: list[dict], name: str, num_seeds: int, logs_done: int, ckpt_dir: Path) -> None:
    """metrics.csv must hold every row the checkpoint has done, and at most one logging point more
    (written just before a checkpoint that a kill interrupted)."""
    mine = {(r["seed"], r["log"]) for r in rows if r["method"] == name}
    ahead = max((log for _, log in mine), default=-1)
    if ahead > logs_done:
        raise CheckpointError(
            f"metrics.csv has {ahead + 1} logging points of {name} but its checkpoint {ckpt_dir} "
            f"{'is missing' if not checkpoint.exists(ckpt_dir) else f'has only {logs_done}'}; cannot resume")
    missing = [(s, log) for s in range(num_seeds) for log in range(logs_done) if (s, log) not in mine]
    if missing:
        raise CheckpointError(
            f"metrics.csv lacks {len(missing)} rows of {name} (seed, log) such as {missing[0]} that its checkpoint "
            f"{ckpt_dir} has done; cannot resume")


def check_finished_rows(rows: list[dict], name: str, config, out: Path) -> None:
    """A method that summary.json calls finished must have every row in metrics.csv."""
    mine = {(r["seed"], r["log"]) for r in rows if r["method"] == name}
    expected = {(s, log) for s in range(config.num_seeds) for log in range(config.num_logs)}
    if not expected <= mine:
        raise CheckpointError(
            f"{out}/metrics.csv lacks {len(expected - mine)} of the {len(expected)} rows of {name}, which "
            f"summary.json says finished; restore metrics.csv or rerun into another --out")

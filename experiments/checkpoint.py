"""Checkpoints of a method's vmapped training state, written atomically with orbax.

`checkpoints/<method>/` holds the state after the last finished logging point and `meta.json`
(the number of logging points done). A new checkpoint is written beside the old one and swapped in
by renames, so at every instant a complete checkpoint exists (`<method>` or, mid-swap,
`<method>.old`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the run."""


def _checkpointer() -> ocp.Checkpointer:
    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


def save(directory: Path, state: Any, logs_done: int) -> None:
    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _checkpointer().save(tmp / "state", args=ocp.args.StandardSave(state))
    (tmp / "meta.json").write_text(json.dumps({"logs_done": logs_done}))
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def exists(directory: Path) -> bool:
    directory = Path(directory)
    return directory.exists() or directory.with_name(directory.name + ".old").exists()


def restore(directory: Path, abstract_state: Any) -> tuple[Any, int]:
    """The saved state (shaped like `abstract_state`) and its number of logging points done."""
    directory = Path(directory)
    if not directory.exists():
        directory = directory.with_name(directory.name + ".old")
    try:
        logs_done = int(json.loads((directory / "meta.json").read_text())["logs_done"])
        state = _checkpointer().restore(directory / "state", args=ocp.args.StandardRestore(abstract_state))
    except Exception as err:  # orbax raises many kinds; all mean the same to the user
        raise CheckpointError(f"checkpoint {directory} is missing or corrupt ({type(err).__name__}: {err})".splitlines()[0]) from err
    leaves_ok = all(a.shape == b.shape for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(abstract_state)))
    if not leaves_ok:
        raise CheckpointError(f"checkpoint {directory} does not match this run's shapes")
    return state, logs_done

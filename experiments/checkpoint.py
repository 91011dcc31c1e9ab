"""Checkpoints of a method's vmapped training state, written atomically with orbax.

`checkpoints/<method>/` holds the state after the last finished logging point (orbax, `state/`)
and `meta.json`: the number of logging points done, the fingerprint of the run that wrote it and
the SHA-256 of every file of the state, verified before a restore (a flipped byte is a corrupt
checkpoint, never a silently different state).
A new checkpoint is written completely under `<method>.tmp` and swapped in by renames, so at every
instant, even under kill -9, a complete checkpoint exists: `<method>`, or, between the two
renames, `<method>.old`. A leftover `<method>.tmp` is incomplete and never read.

`Writer` writes them in a background thread, so the next chunk trains while the files go to disk.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the run."""


def _checkpointer():
    import orbax.checkpoint as ocp  # imported when first needed: a command line checks its input first

    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


def _args():
    import orbax.checkpoint as ocp

    return ocp.args


def _sibling(directory: Path, suffix: str) -> Path:
    return directory.with_name(directory.name + suffix)


def _checksums(state_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under `state_dir`, by relative path."""
    sums = {}
    for path in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        sums[path.relative_to(state_dir).as_posix()] = digest.hexdigest()
    return sums


def save(directory: Path, state: Any, logs_done: int, fingerprint: str = "", extra: dict | None = None) -> None:
    """Writes `state` after `logs_done` logging points; `extra` (JSON) goes into meta.json."""
    directory = Path(directory).absolute()  # orbax needs absolute paths
    tmp, old = _sibling(directory, ".tmp"), _sibling(directory, ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _checkpointer().save(tmp / "state", args=_args().StandardSave(state))
    except OSError:
        raise
    except Exception as err:  # orbax wraps a full disk or a failed write in other kinds (ValueError, ...)
        raise OSError(f"writing checkpoint {tmp} failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    meta = {**(extra or {}), "logs_done": logs_done, "fingerprint": fingerprint, "sha256": _checksums(tmp / "state")}
    (tmp / "meta.json").write_text(json.dumps(meta))
    if directory.exists():
        # `old` exists here only half-deleted by an interrupted earlier save (`directory` is complete).
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


class Writer:
    """Saves checkpoints one at a time in a background thread.

    `save` copies the state to host memory at once (the next chunk donates, and so overwrites, the
    device buffers), then writes it while the caller goes on; `wait` blocks until the last save is
    on disk and raises its error, if any. A save starts only after the previous one ended, so the
    folder always holds a complete checkpoint at most one logging point behind the metrics, which
    `experiments.folder.check_rows` accepts. The thread is not a daemon: even an interrupted
    process finishes the checkpoint it began.
    """

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, directory: Path, state: Any, logs_done: int, fingerprint: str = "", extra: dict | None = None) -> None:
        import jax
        import numpy as np

        self.wait()
        host = jax.tree.map(lambda x: np.array(x, copy=True), state)

        def write() -> None:
            try:
                save(directory, host, logs_done, fingerprint, extra)
            except BaseException as err:  # re-raised by wait(), in the caller's thread
                self._error = err

        self._thread = threading.Thread(target=write, name="checkpoint-writer")
        self._thread.start()

    def wait(self) -> None:
        """Returns once no save is running; raises the error of the last one, if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def finish(self, leaving: BaseException | None) -> None:
        """`wait` at the end of training. `leaving` is the error the training is already stopping
        with, if any: a failed save then becomes a note on it instead of hiding it."""
        try:
            self.wait()
        except Exception as save_error:
            if leaving is None:
                raise
            leaving.add_note(f"the last checkpoint save failed too: {save_error}")


def latest(directory: Path) -> Path | None:
    """The complete checkpoint folder to read (`directory` or, mid-swap, `directory.old`), or None."""
    directory = Path(directory).absolute()  # orbax needs absolute paths
    for candidate in (directory, _sibling(directory, ".old")):
        if candidate.exists():
            return candidate
    return None


def exists(directory: Path) -> bool:
    return latest(directory) is not None


def _complete(directory: Path) -> tuple[Path, dict]:
    """The complete checkpoint folder to read and its meta.json."""
    path = latest(directory)
    if path is None:
        raise CheckpointError(f"checkpoint {directory} is missing")
    try:
        meta = json.loads((path / "meta.json").read_text())
        int(meta["logs_done"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt: unreadable meta.json ({type(err).__name__}: {err})".splitlines()[0]) from None
    return path, meta


def meta(directory: Path) -> dict:
    """The checkpoint's meta.json: `logs_done`, the fingerprint, checksums and what `save` was given."""
    return _complete(directory)[1]


def saved_logs(directory: Path) -> int:
    """The number of logging points the checkpoint in `directory` has done."""
    return int(meta(directory)["logs_done"])


def _verify(path: Path, meta: dict) -> None:
    """Every file of the saved state as it was written (CheckpointError naming the first that is not)."""
    expected = meta.get("sha256")
    if not isinstance(expected, dict) or not expected:
        raise CheckpointError(f"checkpoint {path} has no checksums (meta.json lacks sha256); it cannot be verified, "
                              "so it is not restored")
    found = _checksums(path / "state")
    for name, digest in expected.items():
        if found.get(name) != digest:
            what = "is missing" if name not in found else "differs from what was written (checksum mismatch)"
            raise CheckpointError(f"checkpoint {path} is missing or corrupt: state/{name} {what}; delete the checkpoint "
                                  "to restart that method, or restore it from a copy")


def restore(directory: Path, abstract_state: Any, fingerprint: str | None = None) -> tuple[Any, int]:
    """The saved state (shaped like `abstract_state`) and its number of logging points done.

    With `fingerprint`, the checkpoint must have been written by the run of that fingerprint.
    `abstract_state=None` restores the saved tree as it is (nested dicts of arrays), for inspection.
    """
    path, meta = _complete(directory)
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        raise CheckpointError(f"checkpoint {path} was written by a different run configuration or code version; "
                              "it cannot be resumed by this run")
    _verify(path, meta)
    try:
        args = _args().StandardRestore(abstract_state) if abstract_state is not None else _args().StandardRestore()
        state = _checkpointer().restore(path / "state", args=args)
    except Exception as err:  # orbax raises many kinds; all mean the same to the user
        raise CheckpointError(f"checkpoint {path} is missing or corrupt ({type(err).__name__}: {err})".splitlines()[0]) from None
    if abstract_state is not None:
        import jax

        fits = jax.tree.structure(state) == jax.tree.structure(abstract_state) and all(
            a.shape == b.shape and a.dtype == b.dtype
            for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(abstract_state))
        )
        if not fits:
            raise CheckpointError(f"checkpoint {path} does not match this run's shapes")
    return state, int(meta["logs_done"])

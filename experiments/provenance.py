"""What a run ran on, for config.json: library versions, the accelerator, and the git commit.

    from experiments.provenance import environment_record
    record = environment_record()   # a JSON-ready dict; every part that cannot be found is null

Nothing here decides a run's numbers: the record is for reading results later, not for checking
that a resumed run continues the same code (experiments.run.code_version does that).
"""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy")
GIT_TIMEOUT_S = 10  # a hung git (network file system, lock) must not hold up the start of a run
ROOT = Path(__file__).resolve().parent.parent  # the checkout the code runs from, not the working directory


def library_versions(names=LIBRARIES) -> dict[str, str | None]:
    """Installed distribution versions (without importing them); None for one that is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_record() -> dict:
    """The default backend's platform, device kind(s) and count; nulls when JAX has no usable backend.
    It starts JAX's backend: under jax.distributed, call it after jax.distributed.initialize."""
    try:
        import jax

        devices = jax.devices()
    except Exception:  # noqa: BLE001 - a broken backend must not stop a run from recording the rest
        return {"platform": None, "device_kind": None, "device_count": None}
    kinds = sorted({d.device_kind for d in devices})
    return {"platform": devices[0].platform if devices else None,
            "device_kind": ", ".join(kinds) if kinds else None,  # mixed kinds are all named
            "device_count": len(devices)}


def _git(*args: str, cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):  # no git installed, or it hung
        return None
    return done.stdout if done.returncode == 0 else None


def git_record(root: Path = ROOT) -> dict:
    """The commit of the checkout at `root` and whether it has uncommitted changes (`git status
    --porcelain` not empty, untracked files included: they can change what runs). Both None when
    git is missing or `root` is not in a repository, such as an installed wheel."""
    commit = _git("rev-parse", "HEAD", cwd=root)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", cwd=root)
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def environment_record() -> dict:
    """Library versions, Python, the JAX devices and the git state, as config.json stores them."""
    return {
        "python": platform.python_version(),
        "libraries": library_versions(),
        "devices": device_record(),
        "git": git_record(),
    }

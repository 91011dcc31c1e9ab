"""What every command line here shares: argument errors are one line starting `error:`, exit 2."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one `error:` line (no usage block) and exits 2, like
    every other bad input of this project's commands."""

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


EXIT_FAILED = 1  # numerical trouble, out of memory, a failed write
EXIT_BAD_INPUT = 2  # bad input, or a corrupt or inconsistent results folder


class UsageError(ValueError):
    """Bad input from the command line; reported in one line with exit code 2."""


def enable_compilation_cache(off: bool = False) -> str | None:
    """JAX's persistent compilation cache in the user's cache folder ($XDG_CACHE_HOME or ~/.cache,
    then adaps-jax/xla), unless `off` or ADAPS_JAX_COMPILE_CACHE=0. Its folder, or None."""
    if off or os.environ.get("ADAPS_JAX_COMPILE_CACHE", "1") == "0":
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "adaps-jax" / "xla"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # no writable cache folder: compile every time, as without the cache
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return str(folder)


def start_jax(no_cache: bool = False) -> None:
    """Sets JAX up for a command line, once its arguments are valid and before its first
    computation: the CPU devices (adaps_jax.runtime.configure_cpu) and the compilation cache."""
    from adaps_jax.runtime import configure_cpu

    configure_cpu()
    enable_compilation_cache(off=no_cache)

"""What every command line here shares: argument errors are one line starting `error:`, exit 2."""
from __future__ import annotations

import argparse
import sys


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

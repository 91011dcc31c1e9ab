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

"""`python -m experiments.bench`: see experiments/bench/__init__.py."""
import sys

from experiments.bench.main import main

sys.exit(1 if main().get("failed_sections") else 0)

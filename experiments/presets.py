"""Per-environment defaults and the two budgets: `quick` (this 2-core CPU, minutes) and `paper`.

quick: enough steps for a real, visible learning signal on a laptop-class CPU in a few minutes per
    method; not converged.
paper: the budget for accelerators. The AdaPS paper does not state its budgets; these follow the
    SePS paper's learning-curve lengths for the same tasks (C-RWARE's sparse deliveries need the
    longest), with 8 environments per seed, n-step 5 and 4 seeds as in the paper's set-up.
"""
from __future__ import annotations

ENV_DEFAULT_SCENARIO = {"bps": "bps-15a-3c", "crware": "crware-2c-tiny-4ag", "lbf": "lbf-10x10-6p-3f"}

PRESETS: dict[str, dict[str, dict]] = {
    "quick": {
        "bps": {"total_steps": 400_000, "num_logs": 20},
        # Deliveries are sparse: the quick budget shows first deliveries, not the plateau.
        "crware": {"total_steps": 1_000_000, "num_logs": 10},
        "lbf": {"total_steps": 600_000, "num_logs": 20},
    },
    "paper": {
        "bps": {"total_steps": 10_000_000, "num_logs": 100},
        "crware": {"total_steps": 40_000_000, "num_logs": 100},
        "lbf": {"total_steps": 20_000_000, "num_logs": 100},
    },
}


def env_family(scenario: str) -> str:
    """'bps', 'crware' or 'lbf' from a scenario name (its prefix)."""
    return scenario.split("-", 1)[0]

"""Process-wide XLA settings that the trainer needs on the CPU."""
from __future__ import annotations

import os

_SEQUENTIAL_SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def avoid_cpu_scheduler_deadlock() -> None:
    """Turns off XLA:CPU's concurrency-optimised scheduler, unless the user set that flag.

    With jaxlib 0.10.2, AdaPS's and SePS's `init` vmapped over seeds (the identity phase's loops
    beside the independent parameter initialisation) deadlocked on every try: all threads idle,
    the result never ready. With this scheduler off the same program finished every time; the
    other suspects (multi-threaded Eigen, YNN fusion, async dispatch) made no difference. Must
    run before JAX's CPU backend starts, i.e. before the first computation: importing `adaps_jax`
    does it.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_SEQUENTIAL_SCHEDULER}".strip()

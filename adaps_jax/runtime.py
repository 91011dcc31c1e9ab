"""Process-wide XLA settings that the trainer needs on the CPU."""
from __future__ import annotations

import os

_SINGLE_THREAD_EIGEN = "--xla_cpu_multi_thread_eigen=false"


def avoid_cpu_thread_pool_hang() -> None:
    """Runs XLA:CPU's Eigen kernels single-threaded, unless the user set the flag themselves.

    Large vmapped programs (the identity phase under vmap over seeds) sometimes wedge XLA:CPU's
    multi-threaded Eigen pool: every thread sleeps and the result never arrives (seen here with
    jax 0.10.2 on 2 cores; reported upstream for other vmap-heavy code). Single-threaded Eigen
    avoids it and costs little for our small matrices. Must run before JAX's CPU backend starts,
    i.e. before the first computation; importing `adaps_jax` does it.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_SINGLE_THREAD_EIGEN}".strip()

"""Process-wide XLA settings for the CPU, which a program chooses once at its start, before JAX's
CPU backend starts (its first computation). Importing `adaps_jax` changes nothing global; the
command lines call `configure_cpu()` first thing, and a program that uses the library does the same:

    from adaps_jax.runtime import configure_cpu
    configure_cpu()        # before the first JAX computation; flags already in XLA_FLAGS win
"""
from __future__ import annotations

import os


def default_xla_flag(name: str, value: str) -> None:
    """Appends `--name=value` to XLA_FLAGS unless the user already set `name` there."""
    flags = os.environ.get("XLA_FLAGS", "")
    if name not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --{name}={value}".strip()


def avoid_cpu_scheduler_deadlock() -> None:
    """Turns off XLA:CPU's concurrency-optimised scheduler, unless the user set that flag.

    With jaxlib 0.10.2, AdaPS's and SePS's `init` vmapped over seeds (the identity phase's loops
    beside the independent parameter initialisation) deadlocked on every try: all threads idle,
    the result never ready. With this scheduler off the same program finished every time; the
    other suspects (multi-threaded Eigen, YNN fusion, async dispatch) made no difference. Must
    run before JAX's CPU backend starts, i.e. before the first computation.
    """
    default_xla_flag("xla_cpu_enable_concurrency_optimized_scheduler", "false")


def one_cpu_device_per_core() -> None:
    """Gives XLA:CPU one device per usable core, unless the user set a device count.

    One XLA:CPU device ran a training step's many small operations on about one core. With one
    device per core, `adaps_jax.trainer.seed_keys` shards the seeds over them: on the 2-core CPU,
    4 seeds of FuPS on LBF trained 2.2-2.35x faster (bench/results.md, section devices), while work
    that is not sharded (1 or 3 seeds) ran as fast as with one device. Only the CPU backend gets
    these devices: on a GPU machine `jax.devices()` are still the GPUs.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    default_xla_flag("xla_force_host_platform_device_count", str(cores))


def configure_cpu() -> None:
    """Both settings above, each unless XLA_FLAGS already chooses it. Call before the first JAX
    computation; later it changes nothing (a warning-free no-op for the running backend)."""
    avoid_cpu_scheduler_deadlock()
    one_cpu_device_per_core()

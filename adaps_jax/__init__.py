"""Adaptive Parameter Sharing (AdaPS) and its five baselines, trained by one compiled A2C.

    from adaps_jax import Config, make_train
    trainer = make_train(Config(scenario="bps-15a-3c", method="adaps"))
    state, metrics = jax.jit(jax.vmap(trainer.train))(jax.random.split(key, 4))
"""
from adaps_jax.runtime import avoid_cpu_scheduler_deadlock, one_cpu_device_per_core

avoid_cpu_scheduler_deadlock()
one_cpu_device_per_core()

from adaps_jax.config import METHODS, Config, ConfigError  # noqa: E402
from adaps_jax.trainer import make_train  # noqa: E402

__all__ = ["METHODS", "Config", "ConfigError", "make_train"]

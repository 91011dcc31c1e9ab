"""Adaptive Parameter Sharing (AdaPS) and its five baselines, trained by one compiled A2C.

    from adaps_jax.runtime import configure_cpu
    configure_cpu()                      # optional: XLA settings for the CPU (see runtime.py)
    from adaps_jax import Config, make_train
    trainer = make_train(Config(scenario="bps-15a-3c", method="adaps"))
    state, metrics = jax.jit(jax.vmap(trainer.train))(jax.random.split(key, 4))

Importing the package changes no global setting and does not import JAX until `make_train` is used.
"""
from adaps_jax.config import Config, ConfigError
from adaps_jax.methods import METHODS

__all__ = ["METHODS", "Config", "ConfigError", "make_train"]


def __getattr__(name: str):
    if name == "make_train":  # the trainer imports JAX; the config and the method table do not
        from adaps_jax.trainer import make_train

        return make_train
    raise AttributeError(f"module 'adaps_jax' has no attribute {name!r}")

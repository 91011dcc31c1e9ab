"""Pure-JAX multi-agent environments of the AdaPS paper, and their scenario registry.

    env = envs.make("bps-15a-3c")       # any name from envs.names(), or a valid pattern
    state, timestep = env.reset(key)

Each environment module offers `NAMES` (the scenarios it lists) and `parse(name)`, which builds
an environment from a scenario name or returns None when the name is not its own.
"""
from __future__ import annotations

from envs import bps
from envs.core import MultiAgentEnv, Observation

_MODULES = [bps]


def _load_optional_modules() -> None:
    """crware and lbf register themselves here once they exist (keeps `make` in one place)."""
    import importlib

    for name in ("crware", "lbf"):
        try:
            module = importlib.import_module(f"envs.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"envs.{name}":
                raise
            continue
        if module not in _MODULES:
            _MODULES.append(module)


_load_optional_modules()


def names() -> list[str]:
    """All listed scenario names, in registry order."""
    return [name for module in _MODULES for name in module.NAMES]


def make(name: str) -> MultiAgentEnv:
    """Builds the environment of a scenario name; raises ValueError listing the known names."""
    for module in _MODULES:
        env = module.parse(name)
        if env is not None:
            return env
    raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(names())}")


__all__ = ["MultiAgentEnv", "Observation", "make", "names"]

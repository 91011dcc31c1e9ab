"""Pure-JAX multi-agent environments of the AdaPS paper, and their scenario registry.

    env = envs.make("bps-15a-3c")       # any name from envs.names(), or a valid pattern
    state, timestep = env.reset(key)

Each environment module offers `NAMES` (the scenarios it lists) and `parse(name)`, which builds
an environment from a scenario name or returns None when the name is not its own.
"""
from __future__ import annotations

from envs import bps, crware, lbf
from envs.core import MultiAgentEnv, Observation

_MODULES = [bps, crware, lbf]


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

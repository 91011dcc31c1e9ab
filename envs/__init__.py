"""Pure-JAX multi-agent environments of the AdaPS paper, and their scenario registry.

    env = envs.make("bps-15a-3c")       # any name from envs.names(), or a valid pattern
    state, timestep = env.reset(key)

`envs.scenarios` reads a scenario name (grammar, limits, sizes) in plain Python; `make` builds the
environment from it. Importing this package does not import JAX (the environment modules do, when
`make` first needs them), so a command line can check a name at once.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from envs.scenarios import names, parse

if TYPE_CHECKING:
    from envs.core import MultiAgentEnv, Observation

# family -> (module, environment class)
_CLASSES = {"bps": ("envs.bps", "BlindParticleSpread"), "crware": ("envs.crware", "ColouredWarehouse"),
            "lbf": ("envs.lbf", "LevelBasedForaging")}


def make(name: str) -> MultiAgentEnv:
    """Builds the environment of a scenario name; raises ValueError listing the known names."""
    family, kwargs = parse(name)
    module, cls = _CLASSES[family]
    return getattr(importlib.import_module(module), cls)(**kwargs)


def __getattr__(name: str):
    if name in ("MultiAgentEnv", "Observation"):
        return getattr(importlib.import_module("envs.core"), name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = ["MultiAgentEnv", "Observation", "make", "names", "parse"]

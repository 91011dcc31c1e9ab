"""Every scenario of this package as a JaxMARL environment (`jaxmarl.environments.MultiAgentEnv`).

    import envs, jax
    from envs.jaxmarl import JaxMARLEnv
    env = JaxMARLEnv(envs.make("bps-15a-3c"))        # a jaxmarl MultiAgentEnv: agent_0 .. agent_14
    obs, state = env.reset(jax.random.PRNGKey(0))     # {"agent_0": (10,) float32 array, ...}
    obs, state, rewards, dones, infos = env.step(jax.random.PRNGKey(1), state, {a: 0 for a in env.agents})

It works with JaxMARL's wrappers (e.g. `jaxmarl.wrappers.baselines.LogWrapper`), under jit and vmap.

How the native (jumanji-style) time step maps onto JaxMARL's dicts, agent `agent_i` being row i:
- observations: `observation.agents_view[i]`; `get_avail_actions(state)[agent]` is
  `observation.action_mask[i]`, so masked-out actions (C-RWARE, LBF) are visible to the learner.
- rewards: `reward[i]`, the agent's own reward (sum them for the team reward).
- dones: every agent is done when the episode ends, by termination or by the time limit; JaxMARL
  does not tell these apart, so `infos["terminated"]` (per agent, the native discount is 0) says
  which, for learners that bootstrap at truncations.
- `step` resets automatically (JaxMARL's base class does it from `step_env` and `reset`): after
  the last step of an episode it returns the first observation of a new one (reset with the second
  half of the split `key`), and the rewards and dones of the step that ended it.
- Native environments draw their randomness from their own state, so `step_env` ignores its key.
- `agent_classes` groups the agents by their hidden type (colour or level): for analysis, never
  part of any observation.

JaxMARL is an optional dependency (`pip install 'adaps-jax[jaxmarl]'`): this module imports
without it, and only constructing a `JaxMARLEnv` needs it.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import MultiAgentEnv as NativeEnv
from envs.core import Observation

try:
    from jaxmarl.environments import spaces as _spaces
    from jaxmarl.environments.multi_agent_env import MultiAgentEnv as _JaxMARLBase

    HAVE_JAXMARL = True
except ImportError:  # the adapter class still exists; constructing it explains what is missing
    _spaces = None
    _JaxMARLBase = object
    HAVE_JAXMARL = False


@struct.dataclass
class JaxMARLState:
    """The native state plus its last observation, which JaxMARL asks for without stepping.

    `done` and `step` are the fields of JaxMARL's base `State`: whether the last step ended the
    episode, and the number of steps taken in it.
    """

    env_state: Any
    observation: Observation
    done: chex.Array
    step: chex.Array


class JaxMARLEnv(_JaxMARLBase):
    """Presents a native environment of this package through JaxMARL's MultiAgentEnv API."""

    def __init__(self, env: NativeEnv):
        if not HAVE_JAXMARL:
            raise ImportError("JaxMARLEnv needs jaxmarl, which is not installed: pip install 'adaps-jax[jaxmarl]'")
        if not isinstance(env, NativeEnv):
            raise TypeError(f"JaxMARLEnv wraps an environment from envs.make(name), got {type(env).__name__}")
        super().__init__(env.num_agents)
        self.env = env
        obs_space = _spaces.Box(-jnp.inf, jnp.inf, (env.obs_dim,), jnp.float32)
        act_space = _spaces.Discrete(env.num_actions)
        self.observation_spaces = {agent: obs_space for agent in self.agents}
        self.action_spaces = {agent: act_space for agent in self.agents}

    def __repr__(self) -> str:
        return f"JaxMARLEnv({self.env!r})"

    @property
    def name(self) -> str:
        return repr(self.env)

    @property
    def agent_classes(self) -> dict[str, list[str]]:
        types = np.asarray(self.env.agent_types)
        return {f"type_{t}": [a for a, at in zip(self.agents, types) if at == t] for t in np.unique(types)}

    def _split(self, rows: chex.Array) -> dict[str, chex.Array]:
        return {agent: rows[i] for i, agent in enumerate(self.agents)}

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key: chex.PRNGKey) -> tuple[dict[str, chex.Array], JaxMARLState]:
        env_state, timestep = self.env.reset(key)
        state = JaxMARLState(env_state, timestep.observation, jnp.asarray(False), jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def step_env(self, key: chex.PRNGKey, state: JaxMARLState, actions: dict[str, chex.Array]):
        del key  # the native environments keep their random key in their state
        action = jnp.stack([jnp.asarray(actions[agent], jnp.int32) for agent in self.agents])
        env_state, timestep = self.env.step(state.env_state, action)
        done = timestep.last()
        state = JaxMARLState(env_state, timestep.observation, done, state.step + 1)
        all_agents = jnp.full((self.num_agents,), done)
        dones = {**self._split(all_agents), "__all__": done}
        infos = {"terminated": all_agents & (timestep.discount == 0), "truncated": all_agents & (timestep.discount != 0)}
        return self.get_obs(state), state, self._split(timestep.reward), dones, infos

    def get_obs(self, state: JaxMARLState) -> dict[str, chex.Array]:
        return self._split(state.observation.agents_view)

    @partial(jax.jit, static_argnums=(0,))
    def get_avail_actions(self, state: JaxMARLState) -> dict[str, chex.Array]:
        return self._split(state.observation.action_mask)

    def render(self, state: JaxMARLState) -> np.ndarray:
        """The native environment's picture of the state (an RGB array)."""
        return self.env.render(state.env_state)

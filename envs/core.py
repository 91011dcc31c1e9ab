"""What every environment here shares: the observation type, the specs and the time step.

All environments are multi-agent with discrete actions and one reward per agent. An observation
carries every agent's vector `(N, D)`, its action mask `(N, A)` and its type `(N,)` (the colour or
level group), so every agent of every environment copy steps in one batch. Agents whose own
observation or action space is smaller are padded with zeros / masked-out actions.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any, NamedTuple, TypeVar

import chex
import jax.numpy as jnp
import numpy as np
from jumanji import specs
from jumanji.env import Environment
from jumanji.types import StepType, TimeStep, restart


class Observation(NamedTuple):
    """Per-agent observation of a multi-agent environment.

    agents_view: (N, D) float32, each agent's observation vector.
    action_mask: (N, A) bool, which actions each agent may take.
    agent_type: (N,) int32, each agent's type (colour or level group); known to the
        experimenter, never part of `agents_view` unless the environment says so.
    """

    agents_view: chex.Array
    action_mask: chex.Array
    agent_type: chex.Array


StateT = TypeVar("StateT")


class MultiAgentEnv(Environment[StateT, specs.MultiDiscreteArray, Observation]):
    """A jumanji Environment with N agents, A discrete actions each and per-agent rewards.

    Subclasses set `num_agents`, `num_actions`, `obs_dim`, `time_limit` and `agent_types`
    (a numpy int array of shape (N,)) before calling `super().__init__()`.
    """

    num_agents: int
    num_actions: int
    obs_dim: int
    time_limit: int
    agent_types: np.ndarray

    @property
    def num_types(self) -> int:
        return int(self.agent_types.max()) + 1

    @cached_property
    def observation_spec(self) -> specs.Spec[Observation]:
        n, a, d = self.num_agents, self.num_actions, self.obs_dim
        return specs.Spec(
            Observation,
            "ObservationSpec",
            agents_view=specs.Array((n, d), jnp.float32, "agents_view"),
            action_mask=specs.BoundedArray((n, a), bool, False, True, "action_mask"),
            agent_type=specs.BoundedArray((n,), jnp.int32, 0, self.num_types - 1, "agent_type"),
        )

    @cached_property
    def action_spec(self) -> specs.MultiDiscreteArray:
        return specs.MultiDiscreteArray(
            num_values=jnp.full((self.num_agents,), self.num_actions, jnp.int32), name="action"
        )

    @cached_property
    def reward_spec(self) -> specs.Array:
        return specs.Array((self.num_agents,), jnp.float32, "reward")

    @cached_property
    def discount_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((self.num_agents,), jnp.float32, 0.0, 1.0, "discount")

    def observation(self, agents_view: chex.Array, action_mask: chex.Array | None = None) -> Observation:
        """Wraps per-agent vectors with the action mask (all actions allowed by default) and types."""
        if action_mask is None:
            action_mask = jnp.ones((self.num_agents, self.num_actions), bool)
        return Observation(
            agents_view=agents_view.astype(jnp.float32),
            action_mask=action_mask,
            agent_type=jnp.asarray(self.agent_types, jnp.int32),
        )

    def first_timestep(self, observation: Observation) -> TimeStep[Observation]:
        return restart(observation, shape=(self.num_agents,))

    def next_timestep(
        self,
        observation: Observation,
        reward: chex.Array,
        terminated: chex.Array,
        step_count: chex.Array,
        extras: dict[str, Any] | None = None,
    ) -> TimeStep[Observation]:
        """A mid, termination (discount 0) or truncation (time limit, discount 1) time step.

        Termination wins when both happen on the same step, as in gymnasium.
        """
        done = terminated | (step_count >= self.time_limit)
        ones = jnp.ones((self.num_agents,), jnp.float32)
        return TimeStep(
            step_type=jnp.where(done, StepType.LAST, StepType.MID),
            reward=reward.astype(jnp.float32),
            discount=jnp.where(terminated, 0.0, 1.0) * ones,
            observation=observation,
            extras=extras or {},
        )

    def render_episode(self, states: list, path: str, fps: int = 10) -> str:
        """Renders each state of an episode (a list of states) and writes them as a GIF."""
        from envs.render import save_gif

        return str(save_gif([self.render(state) for state in states], path, fps))

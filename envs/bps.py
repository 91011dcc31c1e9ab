"""Blind-particle Spread (BPS): agents of hidden colours must each reach their colour's landmark.

Rules (the SePS fork of MPE `simple_spread`, "large_spread"):
- Agents form colour groups of given sizes, in contiguous blocks (the first `groups[0]` agents are
  colour 0, ...). Group g owns landmark g. Colours are never observed: that is the "blind".
- Observation of an agent, size 4 + 2L: `[own velocity (2), own position (2), landmark_l position -
  own position for every landmark l (2L)]`. Shuffle variants permute this vector with a fixed
  permutation per group: `numpy.random.default_rng(g).permutation(4 + 2L)` for group g.
- Actions: 0 no-op, 1 -x, 2 +x, 3 -y, 4 +y; the unit force is scaled by sensitivity 5.
- Physics: `v <- v * (1 - 0.25) + force / mass * dt`, then `p <- p + v * dt`, with dt 0.1 and mass
  1; no collisions, no speed limit, no noise, an unbounded world.
- Reset: agents uniform in [-1, 1]^2, landmarks uniform in [-3, 3]^2, velocities 0.
- Reward per agent and step: `-0.5 * distance(agent, own landmark)`, measured after the move.
- Episodes end by the time limit only (50 steps, truncation).

Deliberate differences from MPE: none in the dynamics. Out-of-range actions are treated as no-op
(MPE would raise). Agents and landmarks have no size, since nothing collides.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import TimeStep

from envs import render as draw
from envs import scenarios
from envs.core import MultiAgentEnv, Observation

DT = 0.1
DAMPING = 0.25
SENSITIVITY = 5.0
MASS = 1.0
# Force direction of each action: no-op, -x, +x, -y, +y.
ACTION_FORCE = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.float32)

SCENARIOS = scenarios.BPS_SCENARIOS
NAMES = list(SCENARIOS)


@chex.dataclass(frozen=True)
class State:
    agent_pos: chex.Array  # (N, 2)
    agent_vel: chex.Array  # (N, 2)
    landmark_pos: chex.Array  # (L, 2)
    step_count: chex.Array  # ()
    key: chex.PRNGKey


class BlindParticleSpread(MultiAgentEnv[State]):
    """Blind-particle Spread; see the module docstring for the rules."""

    def __init__(self, groups: tuple[int, ...] = (5, 5, 5), shuffle: bool = False, time_limit: int = 50):
        if not groups or min(groups) < 1:
            raise ValueError(f"groups must be positive sizes, got {groups}")
        self.groups = tuple(int(g) for g in groups)
        self.shuffle = shuffle
        self.num_landmarks = len(self.groups)
        self.num_agents = sum(self.groups)
        self.num_actions = len(ACTION_FORCE)
        self.obs_dim = 4 + 2 * self.num_landmarks
        self.time_limit = time_limit
        self.agent_types = np.repeat(np.arange(self.num_landmarks), self.groups).astype(np.int32)
        # Row a of `obs_permutation` is the order in which agent a sees its observation vector.
        perms = [
            np.random.default_rng(g).permutation(self.obs_dim) if shuffle else np.arange(self.obs_dim)
            for g in range(self.num_landmarks)
        ]
        self.obs_permutation = np.stack([perms[t] for t in self.agent_types])
        super().__init__()

    def __repr__(self) -> str:
        return f"BlindParticleSpread(groups={self.groups}, shuffle={self.shuffle})"

    def reset(self, key: chex.PRNGKey) -> tuple[State, TimeStep[Observation]]:
        key, agent_key, landmark_key = jax.random.split(key, 3)
        state = State(
            agent_pos=jax.random.uniform(agent_key, (self.num_agents, 2), minval=-1.0, maxval=1.0),
            agent_vel=jnp.zeros((self.num_agents, 2)),
            landmark_pos=jax.random.uniform(landmark_key, (self.num_landmarks, 2), minval=-3.0, maxval=3.0),
            step_count=jnp.zeros((), jnp.int32),
            key=key,
        )
        return state, self.first_timestep(self._observe(state))

    def step(self, state: State, action: chex.Array) -> tuple[State, TimeStep[Observation]]:
        valid = (action >= 0) & (action < self.num_actions)
        force = jnp.asarray(ACTION_FORCE)[jnp.where(valid, action, 0)] * SENSITIVITY
        vel = state.agent_vel * (1.0 - DAMPING) + force / MASS * DT
        pos = state.agent_pos + vel * DT
        state = state.replace(agent_pos=pos, agent_vel=vel, step_count=state.step_count + 1)
        return state, self.next_timestep(
            self._observe(state), self._reward(state), jnp.asarray(False), state.step_count
        )

    def _reward(self, state: State) -> chex.Array:
        own_landmark = state.landmark_pos[self.agent_types]
        return -0.5 * jnp.linalg.norm(state.agent_pos - own_landmark, axis=-1)

    def _observe(self, state: State) -> Observation:
        relative = state.landmark_pos[None, :, :] - state.agent_pos[:, None, :]
        view = jnp.concatenate(
            [state.agent_vel, state.agent_pos, relative.reshape(self.num_agents, -1)], axis=-1
        )
        if self.shuffle:
            view = jnp.take_along_axis(view, jnp.asarray(self.obs_permutation), axis=1)
        return self.observation(view)

    def render(self, state: State, size: int = 400, half_width: float = 4.0) -> np.ndarray:
        """RGB image of the square [-half_width, half_width]^2: landmarks as squares, agents as discs."""
        img = draw.blank(size, size)
        scale = size / (2 * half_width)

        def pixel(p: np.ndarray) -> tuple[float, float]:
            return (half_width - p[1]) * scale, (p[0] + half_width) * scale  # y up

        for g, p in enumerate(np.asarray(state.landmark_pos)):
            cy, cx = pixel(p)
            draw.fill_rect(img, int(cy) - 7, int(cx) - 7, int(cy) + 8, int(cx) + 8, draw.BLACK)
            draw.fill_rect(img, int(cy) - 5, int(cx) - 5, int(cy) + 6, int(cx) + 6, draw.type_colour(g))
        for t, p in zip(self.agent_types, np.asarray(state.agent_pos)):
            cy, cx = pixel(p)
            draw.fill_disc(img, cy, cx, 4, draw.type_colour(t))
        return img


def parse(name: str) -> BlindParticleSpread | None:
    """The environment of a BPS name (envs.scenarios.bps); None for other names."""
    kwargs = scenarios.bps(name)
    return None if kwargs is None else BlindParticleSpread(**kwargs)

"""Differential test: Blind-particle Spread against the original MPE code (mpe2's simple_spread).

The SePS fork ("large_spread") is MPE simple_spread with colour groups, one landmark per group, no
collisions and a local reward -0.5 * distance to the own landmark. We build mpe2's simple_spread
with 15 agents, configure its world as the fork does (3 landmarks, agents that do not collide,
dt 0.1, damping 0.25, mass 1, sensitivity 5, no noise, no speed limit), copy the port's state into
it and drive both with the same discrete actions.

mpe2 1.1.1 differs from the spec (and from the fork, whose PettingZoo/OpenAI-MPE `integrate_state`
updates the velocity first and then moves with the *new* velocity) in one place: its
`World.integrate_state` moves the position with the *old* velocity first
(`p <- p + v * dt`, then `v <- v * (1 - damping) + f / m * dt`). Velocities, the action -> force
mapping, damping and sensitivity are identical. The position test therefore replaces
`integrate_state` with the fork's order; `test_mpe2_unpatched_integration_order` pins the
difference of the unpatched package exactly.
"""
from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

mpe2 = pytest.importorskip("mpe2")
from mpe2 import simple_spread_v3  # noqa: E402

N_AGENTS, N_LANDMARKS = 15, 3
TOL = 1e-5


def _fork_integrate_state(self, p_force):
    """The fork's (PettingZoo <= 1.24 / OpenAI MPE) integration: velocity first, then position."""
    for i, entity in enumerate(self.entities):
        if not entity.movable:
            continue
        entity.state.p_vel = entity.state.p_vel * (1 - self.damping)
        if p_force[i] is not None:
            entity.state.p_vel = entity.state.p_vel + (p_force[i] / entity.mass) * self.dt
        assert entity.max_speed is None
        entity.state.p_pos = entity.state.p_pos + entity.state.p_vel * self.dt


def _make_mpe(fork_integration: bool):
    par = simple_spread_v3.parallel_env(N=N_AGENTS, local_ratio=0.5, max_cycles=50, continuous_actions=False)
    par.reset(seed=0)
    world = par.unwrapped.world
    world.landmarks = world.landmarks[:N_LANDMARKS]  # one landmark per colour group
    for agent in world.agents:
        agent.collide = False  # the fork has no collisions
        assert agent.accel is None and agent.u_noise is None and agent.max_speed is None
        assert agent.mass == 1.0 and agent.silent
    assert world.dt == 0.1 and world.damping == 0.25
    if fork_integration:
        world.integrate_state = types.MethodType(_fork_integrate_state, world)
    return par, world


def _sync(world, state) -> None:
    """Copies the port's state into the MPE world (float64 there)."""
    for i, agent in enumerate(world.agents):
        agent.state.p_pos = np.asarray(state.agent_pos[i], np.float64).copy()
        agent.state.p_vel = np.asarray(state.agent_vel[i], np.float64).copy()
    for g, landmark in enumerate(world.landmarks):
        landmark.state.p_pos = np.asarray(state.landmark_pos[g], np.float64).copy()


def _mpe_arrays(world):
    pos = np.stack([a.state.p_pos for a in world.agents])
    vel = np.stack([a.state.p_vel for a in world.agents])
    landmarks = np.stack([lm.state.p_pos for lm in world.landmarks])
    return pos, vel, landmarks


@pytest.fixture(scope="module")
def port():
    env = envs.make("bps-15a-3c")
    return env, jax.jit(env.step)


def test_positions_velocities_rewards_match_mpe(port):
    env, step = port
    par, world = _make_mpe(fork_integration=True)
    rng = np.random.default_rng(0)
    steps_checked = 0
    for episode in range(4):
        state, _ = env.reset(jax.random.PRNGKey(100 + episode))
        par.reset(seed=episode)
        _sync(world, state)
        for t in range(50):
            actions = rng.integers(0, 5, N_AGENTS)
            state, ts = step(state, jnp.asarray(actions, jnp.int32))
            obs, _, _, truncations, _ = par.step({f"agent_{i}": int(a) for i, a in enumerate(actions)})
            pos, vel, landmarks = _mpe_arrays(world)
            np.testing.assert_allclose(np.asarray(state.agent_pos), pos, atol=TOL, rtol=0)
            np.testing.assert_allclose(np.asarray(state.agent_vel), vel, atol=TOL, rtol=0)
            np.testing.assert_allclose(np.asarray(state.landmark_pos), landmarks, atol=TOL, rtol=0)
            # The fork's local reward, from MPE's own positions.
            own = landmarks[env.agent_types]
            mpe_reward = -0.5 * np.linalg.norm(pos - own, axis=-1)
            np.testing.assert_allclose(np.asarray(ts.reward), mpe_reward, atol=TOL, rtol=0)
            # MPE's observation starts with [vel, pos, landmark - pos ...]; the fork keeps only that.
            mpe_obs = np.stack([obs[f"agent_{i}"][: env.obs_dim] for i in range(N_AGENTS)])
            np.testing.assert_allclose(np.asarray(ts.observation.agents_view), mpe_obs, atol=TOL, rtol=0)
            # Both stop by the 50-step time limit, as a truncation.
            assert bool(ts.last()) == all(truncations.values()) == (t == 49)
            steps_checked += 1
    assert steps_checked == 200


def test_mpe2_unpatched_velocities_match_and_action_mapping(port):
    """Unpatched mpe2: action -> force (sensitivity 5, 1 -x, 2 +x, 3 -y, 4 +y) and damping agree."""
    env, step = port
    par, world = _make_mpe(fork_integration=False)
    state, _ = env.reset(jax.random.PRNGKey(7))
    par.reset(seed=7)
    _sync(world, state)
    rng = np.random.default_rng(1)
    for _ in range(50):
        actions = rng.integers(0, 5, N_AGENTS)
        state, _ = step(state, jnp.asarray(actions, jnp.int32))
        par.step({f"agent_{i}": int(a) for i, a in enumerate(actions)})
        _, vel, _ = _mpe_arrays(world)
        np.testing.assert_allclose(np.asarray(state.agent_vel), vel, atol=TOL, rtol=0)
    # One step from rest pins the force of each action exactly: v = 5 * force * 0.1.
    state, _ = env.reset(jax.random.PRNGKey(8))
    state = state.replace(agent_vel=jnp.zeros_like(state.agent_vel))
    par.reset(seed=8)
    _sync(world, state)
    actions = np.arange(N_AGENTS) % 5
    par.step({f"agent_{i}": int(a) for i, a in enumerate(actions)})
    _, vel, _ = _mpe_arrays(world)
    expected = 0.5 * np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.float64)[actions]
    np.testing.assert_allclose(vel, expected, atol=1e-12, rtol=0)


def test_mpe2_unpatched_integration_order(port):
    """Pins the one physics difference of mpe2 1.1.1 from the spec: position moves with the old velocity."""
    env, step = port
    par, world = _make_mpe(fork_integration=False)
    state, _ = env.reset(jax.random.PRNGKey(9))
    rng = np.random.default_rng(2)
    state = state.replace(agent_vel=jnp.asarray(rng.uniform(-1, 1, (N_AGENTS, 2)), jnp.float32))
    par.reset(seed=9)
    _sync(world, state)
    actions = np.arange(N_AGENTS) % 5
    new_state, _ = step(state, jnp.asarray(actions, jnp.int32))
    par.step({f"agent_{i}": int(a) for i, a in enumerate(actions)})
    pos, vel, _ = _mpe_arrays(world)
    old_pos, old_vel = np.asarray(state.agent_pos, np.float64), np.asarray(state.agent_vel, np.float64)
    np.testing.assert_allclose(vel, np.asarray(new_state.agent_vel), atol=TOL, rtol=0)
    # mpe2: p' = p + v_old * dt.  Spec / fork / port: p' = p + v_new * dt.
    np.testing.assert_allclose(pos, old_pos + old_vel * 0.1, atol=1e-12, rtol=0)
    np.testing.assert_allclose(np.asarray(new_state.agent_pos), old_pos + vel * 0.1, atol=TOL, rtol=0)
    assert np.abs(pos - np.asarray(new_state.agent_pos)).max() > 1e-3

"""Fuzzing the environments with out-of-range actions (negative, huge, just past the last action).

Every environment documents that an out-of-range action is carried out as its no-op. Along
trajectories driven by arbitrary int32 actions, each step must equal the step with every
out-of-range action replaced by the agent's no-op action, keep every position in the grid, and
keep every number finite.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs

STEPS = 10
SCENARIOS = {"bps": "bps-4a-2c", "crware": "crware-2c-tiny-4ag", "lbf": "lbf-8x8-3p-2f"}
INT32 = (-(2**31), 2**31 - 1)
# Mostly wild values, with enough valid ones that agents move, turn, load and eat.
ACTION = st.one_of(st.integers(*INT32), st.integers(-3, 8), st.sampled_from([INT32[0], -1, 5, 6, INT32[1]]))


def noop_actions(family: str, env) -> np.ndarray:
    """The action index each agent's no-op has (C-RWARE's colours permute the action indices)."""
    if family == "crware":
        from envs.crware import NOOP

        return np.argmax(env.action_meaning == NOOP, axis=1).astype(np.int32)
    return np.zeros(env.num_agents, np.int32)  # BPS: 0 no-op; LBF: 0 NONE


@functools.cache
def fuzzer(family: str):
    """The env and a jitted rollout: the reset's (state, timestep) and each step's (state, timestep).

    Raw and cleaned actions go through this one compiled program, so their trajectories can be
    compared bit for bit (two copies of a step inside one program may round differently)."""
    env = envs.make(SCENARIOS[family])

    def rollout(key, actions):
        start = env.reset(key)

        def body(state, action):
            stepped = env.step(state, action)
            return stepped[0], stepped

        return start, jax.lax.scan(body, start[0], actions)[1]

    return env, jax.jit(rollout)


def cleaned(family: str, env, actions: np.ndarray) -> np.ndarray:
    """The actions with every out-of-range value replaced by the agent's no-op."""
    in_range = (actions >= 0) & (actions < env.num_actions)
    return np.where(in_range, actions, noop_actions(family, env)).astype(np.int32)


def assert_finite(tree) -> None:
    for leaf in jax.tree.leaves(tree):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            assert np.isfinite(leaf).all()


def assert_in_grid(family: str, env, states) -> None:
    """Invariants of a batch of states (leading axis: steps)."""
    if family == "crware":
        size = np.array([env.layout.width, env.layout.height])
        for pos in (np.asarray(states.agent_pos), np.asarray(states.shelf_pos)):
            assert ((pos >= 0) & (pos < size)).all()
        assert np.isin(np.asarray(states.agent_dir), range(4)).all()
        carried = np.asarray(states.carried)
        assert ((carried >= -1) & (carried < env.num_shelves)).all()
        cells = np.asarray(states.agent_pos)[..., 1] * env.layout.width + np.asarray(states.agent_pos)[..., 0]
        for step_cells, step_carried, queue in zip(cells, carried, np.asarray(states.request_queue)):
            assert len(set(step_cells.tolist())) == env.num_agents  # robots never share a cell
            held = step_carried[step_carried >= 0]
            assert len(set(held.tolist())) == len(held)  # a shelf has one carrier
            assert len(set(queue.tolist())) == len(queue) and ((queue >= 0) & (queue < env.num_shelves)).all()
    elif family == "lbf":
        for pos in (np.asarray(states.player_pos), np.asarray(states.food_pos)):
            assert ((pos >= 0) & (pos < env.grid_size)).all()
        assert (np.asarray(states.food_level) >= 0).all()
    # BPS has an unbounded world: finiteness is its only bound.


@pytest.mark.parametrize("family", list(SCENARIOS))
def test_out_of_range_actions_are_noops_and_keep_states_valid(family):
    pytest.importorskip(f"envs.{family}")
    env, rollout = fuzzer(family)

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**32 - 1),
           actions=st.lists(st.lists(ACTION, min_size=env.num_agents, max_size=env.num_agents),
                            min_size=STEPS, max_size=STEPS))
    def check(seed, actions):
        actions = np.array(actions, np.int32)
        key = jax.random.PRNGKey(seed)
        (state, first), (states, timesteps) = jax.device_get(rollout(key, jnp.asarray(actions)))
        # Out-of-range actions did exactly what the no-op does, step by step.
        _, expected = jax.device_get(rollout(key, jnp.asarray(cleaned(family, env, actions))))
        for got, want in zip(jax.tree.leaves((states, timesteps)), jax.tree.leaves(expected)):
            np.testing.assert_array_equal(got, want)
        assert_finite((state, first, states, timesteps))
        assert_in_grid(family, env, jax.tree.map(lambda x: np.asarray(x)[None], state))
        assert_in_grid(family, env, states)
        assert timesteps.reward.shape == (STEPS, env.num_agents)
        assert timesteps.observation.agents_view.shape == (STEPS, env.num_agents, env.obs_dim)
        np.testing.assert_array_equal(states.step_count, np.arange(1, STEPS + 1))

    check()


@pytest.mark.parametrize("family", list(SCENARIOS))
def test_all_out_of_range_equals_all_noop(family):
    """Only out-of-range actions for a whole episode start: the same trajectory as only no-ops."""
    pytest.importorskip(f"envs.{family}")
    env, rollout = fuzzer(family)
    values = [INT32[0], -1, env.num_actions, INT32[1]]
    wild = np.array([[values[(t + a) % 4] for a in range(env.num_agents)] for t in range(STEPS)], np.int32)
    noop = np.broadcast_to(noop_actions(family, env), wild.shape)
    key = jax.random.PRNGKey(7)
    _, got = jax.device_get(rollout(key, jnp.asarray(wild)))
    _, want = jax.device_get(rollout(key, jnp.asarray(noop)))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)

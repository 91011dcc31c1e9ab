"""Blind-particle Spread against its rules (the docstring of envs/bps.py), with hand-computed values."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jumanji.types import StepType

import envs
from envs import bps
from envs.render import PALETTE

N15 = 15


@pytest.fixture(scope="module")
def env15() -> bps.BlindParticleSpread:
    return envs.make("bps-15a-3c")


@pytest.fixture(scope="module")
def step15(env15):
    return jax.jit(env15.step)


def _state(env, pos, vel, landmarks, step_count=0):
    """A state with the given agent positions/velocities and landmark positions."""
    state, _ = env.reset(jax.random.PRNGKey(0))
    return state.replace(
        agent_pos=jnp.asarray(pos, jnp.float32),
        agent_vel=jnp.asarray(vel, jnp.float32),
        landmark_pos=jnp.asarray(landmarks, jnp.float32),
        step_count=jnp.asarray(step_count, jnp.int32),
    )


LANDMARKS = [[1.0, 2.0], [-2.0, 0.5], [0.0, -3.0]]


def _hand_setup(env):
    pos = np.zeros((N15, 2), np.float32)
    vel = np.zeros((N15, 2), np.float32)
    pos[0], vel[0] = (0.3, -0.2), (0.1, 0.4)  # group 0, actions 2 then 3
    pos[1], vel[1] = (0.0, 0.0), (0.0, 0.0)  # group 0, actions 1 then 4
    pos[2], vel[2] = (1.0, 1.0), (0.2, -0.4)  # group 0, actions 0 then 0
    pos[3], vel[3] = (1.0, 1.0), (0.2, -0.4)  # group 0, out-of-range 5 then -1
    pos[4], vel[4] = (1.0, 1.0), (0.2, -0.4)  # group 0, out-of-range 7 then 99
    pos[5] = (-1.0, 0.5)  # group 1, actions 2 then 2
    pos[10] = (0.0, -1.0)  # group 2, actions 3 then 3
    a1 = np.zeros(N15, np.int32)
    a2 = np.zeros(N15, np.int32)
    a1[[0, 1, 2, 3, 4, 5, 10]] = [2, 1, 0, 5, 7, 2, 3]
    a2[[0, 1, 2, 3, 4, 5, 10]] = [3, 4, 0, -1, 99, 2, 3]
    return _state(env, pos, vel, LANDMARKS), jnp.asarray(a1), jnp.asarray(a2)


def test_physics_and_reward_by_hand(env15, step15):
    # v <- v * 0.75 + 5 * force * 0.1 ; p <- p + v * 0.1 (velocity first, then position).
    state, a1, a2 = _hand_setup(env15)
    s1, ts1 = step15(state, a1)
    s2, ts2 = step15(s1, a2)
    p1, v1 = np.asarray(s1.agent_pos), np.asarray(s1.agent_vel)
    p2, v2 = np.asarray(s2.agent_pos), np.asarray(s2.agent_vel)
    tol = dict(atol=1e-6, rtol=0)
    # Agent 0: +x then -y.
    np.testing.assert_allclose(v1[0], [0.575, 0.3], **tol)
    np.testing.assert_allclose(p1[0], [0.3575, -0.17], **tol)
    np.testing.assert_allclose(v2[0], [0.43125, -0.275], **tol)
    np.testing.assert_allclose(p2[0], [0.400625, -0.1975], **tol)
    # Agent 1: -x then +y from rest.
    np.testing.assert_allclose(v1[1], [-0.5, 0.0], **tol)
    np.testing.assert_allclose(p1[1], [-0.05, 0.0], **tol)
    np.testing.assert_allclose(v2[1], [-0.375, 0.5], **tol)
    np.testing.assert_allclose(p2[1], [-0.0875, 0.05], **tol)
    # Agents 2-4: no-op, and out-of-range actions behave exactly as no-op (pure damping).
    for i in (2, 3, 4):
        np.testing.assert_allclose(v1[i], [0.15, -0.3], **tol)
        np.testing.assert_allclose(p1[i], [1.015, 0.97], **tol)
        np.testing.assert_allclose(v2[i], [0.1125, -0.225], **tol)
        np.testing.assert_allclose(p2[i], [1.02625, 0.9475], **tol)
    # Agent 5 (+x twice) and agent 10 (-y twice).
    np.testing.assert_allclose(p2[5], [-0.8625, 0.5], **tol)
    np.testing.assert_allclose(v2[5], [0.875, 0.0], **tol)
    np.testing.assert_allclose(p2[10], [0.0, -1.1375], **tol)
    np.testing.assert_allclose(v2[10], [0.0, -0.875], **tol)
    # Untouched agents stay at the origin with zero velocity.
    np.testing.assert_array_equal(p2[11:], 0.0)
    # Landmarks never move.
    np.testing.assert_array_equal(np.asarray(s2.landmark_pos), np.asarray(LANDMARKS, np.float32))
    # Reward after the move: -0.5 * distance to own landmark.
    r2 = np.asarray(ts2.reward)
    assert r2.shape == (N15,) and r2.dtype == np.float32
    assert r2[0] == pytest.approx(-0.5 * math.hypot(1.0 - 0.400625, 2.0 + 0.1975), abs=1e-6)
    assert r2[1] == pytest.approx(-0.5 * math.hypot(1.0 + 0.0875, 2.0 - 0.05), abs=1e-6)
    assert r2[5] == pytest.approx(-0.5 * 1.1375, abs=1e-6)  # landmark 1 at (-2, 0.5)
    assert r2[10] == pytest.approx(-0.5 * 1.8625, abs=1e-6)  # landmark 2 at (0, -3)
    assert r2[9] == pytest.approx(-0.5 * math.hypot(-2.0, 0.5), abs=1e-6)  # group 1 agent at origin
    assert r2[14] == pytest.approx(-1.5, abs=1e-6)  # group 2 agent at origin
    r1 = np.asarray(ts1.reward)
    assert r1[0] == pytest.approx(-0.5 * math.hypot(1.0 - 0.3575, 2.0 + 0.17), abs=1e-6)


def test_observation_size_and_layout(env15, step15):
    assert env15.obs_dim == 10
    state, a1, _ = _hand_setup(env15)
    _, ts = step15(state, a1)
    obs = np.asarray(ts.observation.agents_view)
    assert obs.shape == (N15, 10) and obs.dtype == np.float32
    # [vel(2), pos(2), l0 - p, l1 - p, l2 - p] for agent 0 after +x from p=(0.3,-0.2), v=(0.1,0.4).
    expected0 = [0.575, 0.3, 0.3575, -0.17, 0.6425, 2.17, -2.3575, 0.67, -0.3575, -2.83]
    np.testing.assert_allclose(obs[0], expected0, atol=1e-6, rtol=0)
    # Same layout for an agent of another group: nothing in the vector depends on the colour.
    expected5 = [0.5, 0.0, -0.95, 0.5, 1.95, 1.5, -1.05, 0.0, 0.95, -3.5]
    np.testing.assert_allclose(obs[5], expected5, atol=1e-6, rtol=0)
    # Untouched agents at the origin see the landmarks' absolute positions.
    np.testing.assert_allclose(obs[14], [0, 0, 0, 0, *np.ravel(LANDMARKS)], atol=1e-6, rtol=0)
    assert np.asarray(ts.observation.action_mask).all()


def test_observation_size_other_scenarios():
    assert envs.make("bps-30a-5c").obs_dim == 14
    _, ts = envs.make("bps-30a-5c-uneven").reset(jax.random.PRNGKey(1))
    assert ts.observation.agents_view.shape == (30, 14)


@pytest.mark.parametrize("plain_name, shuffled_name, groups", [
    ("bps-15a-3c", "bps-15a-3c-shuffle", (5, 5, 5)),
    ("bps-30a-5c", "bps-30a-5c-shuffle", (6, 6, 6, 6, 6)),
])
def test_shuffle_permutes_by_fixed_group_permutation(plain_name, shuffled_name, groups):
    plain, shuffled = envs.make(plain_name), envs.make(shuffled_name)
    dim = plain.obs_dim
    perms = [np.random.default_rng(g).permutation(dim) for g in range(len(groups))]
    assert len({tuple(p) for p in perms}) == len(groups)  # groups see different orders
    types = np.repeat(np.arange(len(groups)), groups)
    key = jax.random.PRNGKey(3)
    s_p, ts_p = plain.reset(key)
    s_s, ts_s = shuffled.reset(key)
    for t in range(3):
        o_p = np.asarray(ts_p.observation.agents_view)
        o_s = np.asarray(ts_s.observation.agents_view)
        assert not np.array_equal(o_p, o_s)
        for i, g in enumerate(types):
            np.testing.assert_array_equal(o_s[i], o_p[i][perms[g]])
        action = jax.random.randint(jax.random.PRNGKey(10 + t), (sum(groups),), 0, 5)
        s_p, ts_p = plain.step(s_p, action)
        s_s, ts_s = shuffled.step(s_s, action)
    # Shuffling only changes what is observed, never the dynamics or rewards.
    np.testing.assert_array_equal(np.asarray(s_p.agent_pos), np.asarray(s_s.agent_pos))
    np.testing.assert_array_equal(np.asarray(ts_p.reward), np.asarray(ts_s.reward))


@pytest.mark.parametrize("name", bps.NAMES)
def test_agent_types_in_contiguous_blocks(name):
    env = envs.make(name)
    groups = bps.SCENARIOS[name][0]
    expected = np.concatenate([np.full(n, g) for g, n in enumerate(groups)])
    np.testing.assert_array_equal(env.agent_types, expected)
    assert env.num_agents == sum(groups) and env.num_landmarks == len(groups)
    _, ts = env.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(ts.observation.agent_type), expected)
    assert ts.observation.agents_view.shape == (sum(groups), 4 + 2 * len(groups))


def test_uneven_types_exact():
    env = envs.make("bps-30a-5c-uneven")
    assert env.agent_types.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 12 + [4] * 9


def test_reset_distribution(env15):
    states, ts = jax.vmap(env15.reset)(jax.random.split(jax.random.PRNGKey(5), 32))
    pos, lm = np.asarray(states.agent_pos), np.asarray(states.landmark_pos)
    assert np.abs(pos).max() <= 1.0 and np.abs(lm).max() <= 3.0
    assert np.abs(lm).max() > 2.0  # landmarks really use the wider box
    np.testing.assert_array_equal(np.asarray(states.agent_vel), 0.0)
    assert (np.asarray(ts.step_type) == StepType.FIRST).all()


def test_truncation_at_step_50(env15, step15):
    state, ts = env15.reset(jax.random.PRNGKey(7))
    assert ts.step_type == StepType.FIRST
    key = jax.random.PRNGKey(8)
    for t in range(1, 51):
        key, sub = jax.random.split(key)
        state, ts = step15(state, jax.random.randint(sub, (N15,), 0, 5))
        assert int(state.step_count) == t
        if t < 50:
            assert ts.step_type == StepType.MID, t
        np.testing.assert_array_equal(np.asarray(ts.discount), np.ones(N15, np.float32))
    assert ts.step_type == StepType.LAST
    assert ts.discount.shape == (N15,)


def test_all_scenario_names_build():
    for name in bps.NAMES:
        env = envs.make(name)
        assert isinstance(env, bps.BlindParticleSpread)
        assert name in envs.names()
    assert envs.make("bps-12a-4c").groups == (3, 3, 3, 3)
    assert envs.make("bps-12a-4c-shuffle").shuffle
    with pytest.raises(ValueError):
        envs.make("bps-10a-3c")


def test_unknown_name_lists_names():
    with pytest.raises(ValueError) as err:
        envs.make("no-such-env")
    message = str(err.value)
    assert "no-such-env" in message
    for name in envs.names():
        assert name in message


def test_specs_match_timesteps(env15, step15):
    state, ts0 = env15.reset(jax.random.PRNGKey(0))
    _, ts1 = step15(state, jnp.zeros(N15, jnp.int32))
    for ts in (ts0, ts1):
        env15.observation_spec.validate(ts.observation)
        env15.reward_spec.validate(ts.reward)
        env15.discount_spec.validate(ts.discount)
        assert ts.observation.agents_view.dtype == jnp.float32
        assert ts.observation.action_mask.shape == (N15, 5) and ts.observation.action_mask.dtype == bool
        assert ts.observation.agent_type.dtype == jnp.int32
    spec = env15.observation_spec
    assert spec.agents_view.shape == (N15, 10)
    assert spec.action_mask.shape == (N15, 5)
    assert spec.agent_type.shape == (N15,)
    np.testing.assert_array_equal(np.asarray(env15.action_spec.num_values), np.full(N15, 5))
    assert env15.reward_spec.shape == (N15,) and env15.discount_spec.shape == (N15,)
    env15.action_spec.validate(jnp.zeros(N15, jnp.int32))


def test_jit_vmap_64_equals_per_copy(env15, step15):
    batch = 64
    keys = jax.random.split(jax.random.PRNGKey(11), batch)
    states, _ = jax.jit(jax.vmap(env15.reset))(keys)
    vstep = jax.jit(jax.vmap(env15.step))
    singles = [env15.reset(k)[0] for k in keys]
    akey = jax.random.PRNGKey(12)
    for _ in range(3):
        akey, sub = jax.random.split(akey)
        actions = jax.random.randint(sub, (batch, N15), -1, 6)
        states, ts = vstep(states, actions)
        for b in range(batch):
            singles[b], ts_b = step15(singles[b], actions[b])
            np.testing.assert_allclose(np.asarray(states.agent_pos[b]), np.asarray(singles[b].agent_pos), atol=1e-6)
            np.testing.assert_allclose(np.asarray(states.agent_vel[b]), np.asarray(singles[b].agent_vel), atol=1e-6)
            np.testing.assert_allclose(np.asarray(ts.reward[b]), np.asarray(ts_b.reward), atol=1e-6)
            np.testing.assert_allclose(
                np.asarray(ts.observation.agents_view[b]), np.asarray(ts_b.observation.agents_view), atol=1e-6
            )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.lists(st.integers(-2, 7), min_size=N15, max_size=N15), min_size=1, max_size=12),
)
def test_property_reward_is_own_landmark_distance(env15, step15, seed, actions):
    state, ts = env15.reset(jax.random.PRNGKey(seed))
    types = env15.agent_types
    for action in actions:
        state, ts = step15(state, jnp.asarray(action, jnp.int32))
        pos = np.asarray(state.agent_pos, np.float64)
        own = np.asarray(state.landmark_pos, np.float64)[types]
        expected = -0.5 * np.linalg.norm(pos - own, axis=-1)
        np.testing.assert_allclose(np.asarray(ts.reward), expected, atol=1e-5, rtol=1e-5)
        for leaf in jax.tree_util.tree_leaves((state, ts)):
            leaf = np.asarray(leaf)
            if np.issubdtype(leaf.dtype, np.floating):
                assert np.isfinite(leaf).all()


def test_render_shows_every_landmark_colour(env15):
    state, _ = env15.reset(jax.random.PRNGKey(2))
    img = env15.render(state)
    assert img.shape == (400, 400, 3) and img.dtype == np.uint8
    pixels = {tuple(p) for p in img.reshape(-1, 3)}
    for g in range(3):
        assert tuple(PALETTE[g]) in pixels, g


def test_render_episode_writes_gif(env15, step15, tmp_path):
    from PIL import Image

    state, _ = env15.reset(jax.random.PRNGKey(4))
    states = [state]
    for _ in range(5):  # constant +x: every agent moves >= 2 pixels per frame, so frames differ
        state, _ = step15(state, jnp.full(N15, 2, jnp.int32))
        states.append(state)
    path = env15.render_episode(states, str(tmp_path / "episode.gif"))
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == len(states)
        assert gif.size == (400, 400)

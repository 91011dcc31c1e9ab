"""The SePS variant rules of Level-based Foraging, exact cases, and invariants under random play."""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs import render as draw
from envs.lbf import ACTION_DELTA, LOAD, NAMES, NONE, LevelBasedForaging, State, parse

N, S, W, E = 1, 2, 3, 4


@lru_cache(maxsize=None)
def compiled(name: str):
    """The environment of `name`, its jitted step and its jitted batched reset (compiled once)."""
    env = parse(name)
    return env, jax.jit(env.step), jax.jit(jax.vmap(env.reset))


def step(name: str, state: State, action) -> tuple:
    return compiled(name)[1](state, jnp.asarray(action, jnp.int32))


def batch_reset(name: str, seed: int = 0) -> tuple:
    """2048 resets at once (one batch size everywhere, so each scenario compiles once)."""
    return compiled(name)[2](jax.random.split(jax.random.key(seed), 2048))


def make_state(env: LevelBasedForaging, players, foods, spawned: float | None = None) -> State:
    """A state from player cells [(row, col)] and foods [((row, col), level)], row-major."""
    foods = sorted(foods)
    return State(
        player_pos=jnp.asarray(players, jnp.int32),
        food_pos=jnp.asarray([p for p, _ in foods], jnp.int32),
        food_level=jnp.asarray([lvl for _, lvl in foods], jnp.int32),
        food_spawned=jnp.asarray(sum(lvl for _, lvl in foods) if spawned is None else spawned, jnp.float32),
        step_count=jnp.asarray(0, jnp.int32),
        key=jax.random.key(0),
    )


# ------------------------------------------------------------------------------------- names


def test_listed_names_build_and_register():
    assert {"lbf-8x8-3p-2f", "lbf-10x10-6p-3f", "lbf-12x12-9p-4f", "lbf-15x15-12p-6f", "lbf-10x10-6p-3f-coop",
            "lbf-30x30-30p-10f", "lbf-10x10-6p-3f-2s"} <= set(NAMES)
    for name in NAMES:
        assert isinstance(envs.make(name), LevelBasedForaging)
        assert name in envs.names()


def test_parse_reads_every_field():
    env = parse("lbf-10x10-6p-3f")
    assert (env.grid_size, env.num_agents, env.num_food, env.sight, env.coop) == (10, 6, 3, 10, False)
    assert (env.obs_dim, env.num_actions, env.time_limit) == (27, 6, 50)
    env = parse("lbf-11x11-4p-2f-coop-3s")
    assert (env.grid_size, env.num_agents, env.num_food, env.sight, env.coop) == (11, 4, 2, 3, True)


@pytest.mark.parametrize(
    "name",
    ["lbf-10x9-6p-3f", "lbf-3x3-9p-1f", "lbf-5x5-2p-2f", "lbf-10x10-1p-3f", "lbf-10x10-0p-3f",
     "lbf-10x10-6p-0f", "lbf-10x10-6p-3f-0s", "lbf-big", "lbf-10x10-6p-3f-coop-"],
)
def test_malformed_lbf_names_raise_one_line(name):
    with pytest.raises(ValueError) as err:
        parse(name)
    assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError):
        envs.make(name)


def test_other_names_are_not_lbf():
    assert parse("bps-15a-3c") is None and parse("Foraging-8x8-2p-2f-v3") is None


# ------------------------------------------------------------------------------- variant rules


def test_levels_fixed_by_index_and_types_are_level_minus_one():
    assert parse("lbf-15x15-12p-6f").levels.tolist() == [1, 2, 3] * 4
    _, ts = batch_reset("lbf-10x10-6p-3f", seed=3)
    assert (np.asarray(ts.observation.agent_type) == [0, 1, 2, 0, 1, 2]).all()


def test_max_food_level_is_the_sum_of_the_three_lowest_levels():
    # Levels 1 | 1,2 | 1,2,3 | 1,2,3,1 | 1,2,3,1,2,3,1: the lowest three sum to 1, 3, 6, 4, 3.
    assert [parse(f"lbf-8x8-{p}p-1f-coop").max_food_level for p in (1, 2, 3, 4, 7)] == [1, 3, 6, 4, 3]


@pytest.mark.parametrize(
    "name, levels",
    [("lbf-8x8-3p-2f", {1, 2, 3, 4, 5}), ("lbf-10x10-6p-3f", {1, 2, 3}), ("lbf-10x10-6p-3f-coop", {4}),
     ("lbf-8x8-2p-2f", {1, 2})],
)
def test_food_levels(name, levels):
    env = parse(name)
    states, _ = batch_reset(name)
    drawn = np.asarray(states.food_level)
    assert set(drawn.ravel().tolist()) == levels
    np.testing.assert_array_equal(np.asarray(states.food_spawned), drawn.sum(axis=1))


@pytest.mark.parametrize("name", ["lbf-7x7-9p-2f", "lbf-8x8-3p-2f"])
def test_spawn_rules(name):
    env = parse(name)
    size = env.grid_size
    states, ts = batch_reset(name, seed=1)
    players, foods = np.asarray(states.player_pos), np.asarray(states.food_pos)
    player_cells, food_cells = players @ [size, 1], foods @ [size, 1]
    assert (np.asarray(states.food_level) > 0).all()
    assert ((players >= 0) & (players < size)).all() and ((foods >= 1) & (foods <= size - 2)).all()
    assert (np.diff(np.sort(player_cells), axis=1) > 0).all()  # distinct
    assert not (player_cells[:, :, None] == food_cells[:, None, :]).any()
    assert (np.diff(food_cells, axis=1) > 0).all()  # row-major slots
    d = np.abs(foods[:, :, None] - foods[:, None, :])  # (batch, F, F, 2)
    apart = (d.max(-1) > 1) & ~((d.min(-1) == 0) & (d.max(-1) == 2))
    assert (apart | np.eye(env.num_food, dtype=bool)).all()
    # Players are uniform over the grid; foods reach every interior cell.
    counts = np.bincount(players[:, 0, 0] * size + players[:, 0, 1], minlength=size * size)
    expected = len(players) / size**2
    assert counts.min() > 0.3 * expected and counts.max() < 1.8 * expected
    interior = {(r, c) for r in range(1, size - 1) for c in range(1, size - 1)}
    assert set(map(tuple, foods.reshape(-1, 2).tolist())) == interior
    assert float(ts.step_type.max()) == 0 and ts.reward.shape == (2048, env.num_agents)


# ------------------------------------------------------------------------------- exact cases


def test_reward_split_by_level_and_normalised_by_the_food_spawned():
    env = parse("lbf-8x8-3p-2f")
    state = make_state(env, [(2, 3), (3, 2), (3, 4)], [((3, 3), 5), ((6, 6), 3)], spawned=10)
    state, ts = step("lbf-8x8-3p-2f", state, [LOAD, LOAD, LOAD])
    np.testing.assert_allclose(np.asarray(ts.reward), [5 / 60, 10 / 60, 15 / 60], rtol=1e-6)
    assert np.asarray(state.food_level).tolist() == [0, 3] and not ts.last()


def test_loading_needs_the_levels_of_loaders_only():
    env = parse("lbf-8x8-3p-2f")
    state = make_state(env, [(2, 3), (3, 2), (3, 4)], [((3, 3), 4), ((6, 6), 3)])
    after, ts = step("lbf-8x8-3p-2f", state, [LOAD, LOAD, NONE])  # 1 + 2 < 4; level 3 stands by
    assert np.asarray(after.food_level).tolist() == [4, 3] and float(ts.reward.sum()) == 0.0
    after, ts = step("lbf-8x8-3p-2f", state, [LOAD, NONE, LOAD])  # 1 + 3 >= 4
    assert np.asarray(after.food_level).tolist() == [0, 3]
    np.testing.assert_allclose(np.asarray(ts.reward), [1 / 7, 0, 3 / 7], rtol=1e-6)


def test_observation_layout_full_sight():
    env = parse("lbf-8x8-3p-2f")
    state = make_state(env, [(0, 0), (7, 7), (2, 5)], [((5, 2), 3), ((1, 1), 4)])
    _, ts = step("lbf-8x8-3p-2f", state, [NONE, NONE, NONE])
    view = np.asarray(ts.observation.agents_view)
    foods = [1, 1, 4, 5, 2, 3]  # row-major, grid coordinates
    assert view.tolist() == [
        foods + [0, 0, 0, 7, 7, 0, 2, 5, 0],
        foods + [7, 7, 0, 0, 0, 0, 2, 5, 0],
        foods + [2, 5, 0, 0, 0, 0, 7, 7, 0],
    ]
    eaten = state.replace(food_level=jnp.asarray([0, 3]))
    _, ts = step("lbf-8x8-3p-2f", eaten, [NONE, NONE, NONE])
    assert np.asarray(ts.observation.agents_view)[0, :6].tolist() == [5, 2, 3, -1, -1, 0]


def test_observation_layout_partial_sight():
    env = parse("lbf-8x8-3p-2f-1s")
    state = make_state(env, [(4, 4), (5, 5), (1, 0)], [((3, 3), 2), ((1, 1), 4)])
    _, ts = step("lbf-8x8-3p-2f-1s", state, [NONE, NONE, NONE])
    view = np.asarray(ts.observation.agents_view)
    # Player 0 sees food (3,3) and player 1 in its window from (3,3); player 2 misses both.
    assert view[0].tolist() == [0, 0, 2, -1, -1, 0, 1, 1, 0, 2, 2, 0, -1, -1, 0]
    # Player 1's window starts at (4,4): the food at (3,3) is out of sight (2 rows away diagonally).
    assert view[1].tolist() == [-1, -1, 0, -1, -1, 0, 1, 1, 0, 0, 0, 0, -1, -1, 0]
    # Player 2 at (1,0): window corner (0,0); food (1,1) at (1,1); player window 0..2 misses both others.
    assert view[2].tolist() == [1, 1, 4, -1, -1, 0, 1, 0, 0, -1, -1, 0, -1, -1, 0]


def test_action_mask():
    env = parse("lbf-8x8-3p-2f")
    state = make_state(env, [(0, 0), (3, 2), (7, 4)], [((3, 3), 2), ((6, 5), 3)])
    _, ts = step("lbf-8x8-3p-2f", state, [NONE, NONE, NONE])
    assert np.asarray(ts.observation.action_mask).astype(int).tolist() == [
        [1, 0, 1, 0, 1, 0],  # corner: only south and east
        [1, 1, 1, 1, 0, 1],  # food to the east
        [1, 1, 0, 1, 1, 0],  # bottom row; food is diagonal, not beside
    ]


def test_invalid_and_out_of_range_actions_are_none():
    env = parse("lbf-8x8-3p-2f")
    state = make_state(env, [(0, 0), (3, 2), (5, 5)], [((3, 3), 3), ((6, 5), 3)])
    after, _ = step("lbf-8x8-3p-2f", state, [N, E, 9])  # off the grid, into food, out of range
    np.testing.assert_array_equal(np.asarray(after.player_pos), np.asarray(state.player_pos))
    after, _ = step("lbf-8x8-3p-2f", state, [-3, LOAD, S])  # -3 is NONE; level 2 alone fails; (6, 5) is food
    np.testing.assert_array_equal(np.asarray(after.player_pos), np.asarray(state.player_pos))
    after, _ = step("lbf-8x8-3p-2f", state, [S, S, W])
    assert np.asarray(after.player_pos).tolist() == [[1, 0], [4, 2], [5, 4]]


def test_specs_match_a_batch_of_thousands():
    env = parse("lbf-10x10-6p-3f")
    states, _ = batch_reset("lbf-10x10-6p-3f")
    actions = jax.random.randint(jax.random.key(1), (2048, env.num_agents), 0, 6)
    _, ts = jax.jit(jax.vmap(env.step))(states, actions)
    env.observation_spec.validate(jax.tree.map(lambda x: x[0], ts.observation))
    assert ts.observation.agents_view.shape == (2048, 6, 27) and ts.reward.shape == (2048, 6)
    assert env.action_spec.num_values.tolist() == [6] * 6


def test_render_draws_food_levels_and_player_types(tmp_path):
    env = parse("lbf-8x8-3p-2f")
    state = make_state(env, [(0, 0), (7, 7), (2, 5)], [((5, 2), 3), ((1, 1), 4)])
    img = env.render(state)
    assert img.shape == (8 * 32 + 1, 8 * 32 + 1, 3) and img.dtype == np.uint8
    for (row, col), t in zip([(0, 0), (7, 7), (2, 5)], [0, 1, 2]):
        assert img[row * 32 + 16, col * 32 + 16].tolist() == draw.type_colour(t).tolist()
    lower = env.render(state.replace(food_level=jnp.asarray([4, 1])))
    white = lambda im: (im[5 * 32 : 6 * 32, 2 * 32 : 3 * 32] == 255).all(-1).sum()  # noqa: E731
    assert white(lower) < white(img)
    path = env.render_episode([state, state.replace(food_level=jnp.asarray([4, 1]))], str(tmp_path / "lbf.gif"))
    from PIL import Image

    assert Image.open(path).n_frames == 2


# ----------------------------------------------------------------------- invariants, random play

ROLLOUT_NAMES = ["lbf-6x6-6p-1f-coop", "lbf-7x7-9p-2f-2s"]
# Actions -1 .. 7: out-of-range values are played too; LOAD is drawn more often.
ACTION_VALUES = np.arange(-1, 8)
ACTION_P = np.array([1, 2, 2, 2, 2, 2, 6, 1, 1]) / 19


def record(state: State, ts) -> dict:
    """What the invariants need of a state and its time step, as plain arrays."""
    return dict(
        pos=state.player_pos, food_pos=state.food_pos, food_level=state.food_level, spawned=state.food_spawned,
        step=state.step_count, mask=ts.observation.action_mask, view=ts.observation.agents_view,
        reward=ts.reward, discount=ts.discount, last=ts.last(),
    )


@lru_cache(maxsize=None)
def rollout(name: str):
    """A jitted function: key -> 6 episodes of 50 random steps, as (before, action, after) per step."""
    env = parse(name)

    def episode(key: jax.Array):
        reset_key, act_key = jax.random.split(key)

        def body(carry, k):
            action = jax.random.choice(k, ACTION_VALUES, (env.num_agents,), p=ACTION_P)
            after = env.step(carry[0], action)
            return after, (record(*carry), action, record(*after))

        return jax.lax.scan(body, env.reset(reset_key), jax.random.split(act_key, env.time_limit))[1]

    return env, jax.jit(lambda key: jax.vmap(episode)(jax.random.split(key, 6)))


def check_step(env: LevelBasedForaging, s0: dict, action: np.ndarray, s1: dict) -> None:
    size, levels = env.grid_size, env.levels
    pos0, pos1 = s0["pos"], s1["pos"]
    alive0 = s0["food_level"] > 0
    # The action carried out: in range and allowed by the mask, else NONE.
    done = np.where((action >= 0) & (action < 6), action, NONE)
    done = np.where(s0["mask"][np.arange(env.num_agents), done], done, NONE)
    target = pos0 + ACTION_DELTA[done]
    moved = (pos1 != pos0).any(axis=1)
    claims = [tuple(t) for t in target]

    assert ((pos1 >= 0) & (pos1 < size)).all()
    assert np.all((pos1 == pos0) | (pos1 == target))
    on_food = (pos1[:, None, :] == s1["food_pos"][None]).all(-1) & (s1["food_level"] > 0)
    assert not on_food.any()
    for i in range(env.num_agents):
        # A player moves exactly when no one else claims its target (a stayer claims its own cell).
        alone = claims.count(claims[i]) == 1
        assert moved[i] == (alone and done[i] in (N, S, W, E))
    for i in range(env.num_agents):
        for j in range(env.num_agents):
            if i != j and (pos1[i] == pos1[j]).all() and moved[i]:
                # Sharing only as lbforaging: j was there, tried to leave and was blocked.
                assert not moved[j] and (pos0[j] == pos1[i]).all() and done[j] in (N, S, W, E)

    beside = (np.abs(s0["food_pos"][None] - pos0[:, None]).sum(-1) == 1) & alive0  # (P, F)
    lift = ((done == LOAD)[:, None] & beside) * levels[:, None]
    eaten = alive0 & (lift.sum(0) >= s0["food_level"])
    np.testing.assert_array_equal(s1["food_level"], np.where(eaten, 0, s0["food_level"]))
    share = np.where(eaten, s0["food_level"] / np.maximum(lift.sum(0), 1) / s0["spawned"], 0)
    np.testing.assert_allclose(s1["reward"], (lift * share).sum(1), rtol=1e-5, atol=1e-7)
    # Hidden levels; termination and truncation.
    assert (s1["view"][:, 3 * env.num_food + 2 :: 3] == 0).all()
    all_eaten = (s1["food_level"] == 0).all()
    assert (s1["discount"] == 0).all() == all_eaten
    assert s1["last"] == (all_eaten or s1["step"] >= env.time_limit)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(ROLLOUT_NAMES))
def test_invariants_under_random_play(seed, name):
    env, run = rollout(name)
    before, action, after = jax.device_get(run(jax.random.key(seed)))
    for b in range(action.shape[0]):
        team_return = 0.0
        for t in range(env.time_limit):
            s0, s1 = ({k: v[b, t] for k, v in x.items()} for x in (before, after))
            check_step(env, s0, action[b, t], s1)
            team_return += float(s1["reward"].sum())
            if s1["last"]:
                break
        assert team_return <= 1.0 + 1e-5
        if (s1["food_level"] == 0).all():
            assert team_return == pytest.approx(1.0, abs=1e-5)

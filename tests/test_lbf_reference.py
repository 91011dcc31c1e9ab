"""Differential tests: the JAX port against lbforaging 2.0's ForagingEnv, state by state.

Both environments are put in the same state (the original's players, field, spawned food total and
step count are written directly), get the same actions, and must agree on the next state, every
observation (the original's player-level slots, which the SePS variant hides, are zeroed), the
action masks, the rewards and the end of the episode.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("lbforaging")
from lbforaging.foraging.environment import Action, ForagingEnv  # noqa: E402

from envs.lbf import LOAD, NONE, LevelBasedForaging, State  # noqa: E402


@lru_cache(maxsize=None)
def pair(size: int, players: int, food: int, sight: int | None = None, coop: bool = False):
    """The port (with its jitted reset and step) and an original built with the same levels."""
    ours = LevelBasedForaging(size, players, food, sight, coop)
    levels = ours.levels.tolist()
    ref = ForagingEnv(
        players=players, min_player_level=levels, max_player_level=levels, min_food_level=1,
        max_food_level=None, field_size=(size, size), max_num_food=food, sight=ours.sight,
        max_episode_steps=ours.time_limit, force_coop=coop, normalize_reward=True,
        observe_agent_levels=True,
    )
    ref.reset(seed=0)
    return ours, jax.jit(ours.reset), jax.jit(ours.step), ref


def make_state(env: LevelBasedForaging, players, foods, spawned: float | None = None, step: int = 0) -> State:
    """A state from player cells [(row, col)] and foods [((row, col), level)] (sorted row-major)."""
    foods = sorted(foods)
    food_pos = [p for p, _ in foods] + [(0, 0)] * (env.num_food - len(foods))
    food_level = [lvl for _, lvl in foods] + [0] * (env.num_food - len(foods))
    return State(
        player_pos=jnp.asarray(players, jnp.int32),
        food_pos=jnp.asarray(food_pos, jnp.int32).reshape(env.num_food, 2),
        food_level=jnp.asarray(food_level, jnp.int32),
        food_spawned=jnp.asarray(sum(food_level) if spawned is None else spawned, jnp.float32),
        step_count=jnp.asarray(step, jnp.int32),
        key=jax.random.key(0),
    )


def write(ref: ForagingEnv, env: LevelBasedForaging, state: State) -> None:
    """Puts the original in `state`."""
    ref.field = np.zeros((env.grid_size, env.grid_size), np.int32)
    for (row, col), level in zip(np.asarray(state.food_pos), np.asarray(state.food_level)):
        if level > 0:
            ref.field[row, col] = level
    for player, (row, col), level in zip(ref.players, np.asarray(state.player_pos), env.levels):
        player.position = (int(row), int(col))
        player.level = int(level)
        player.reward = 0
    ref._food_spawned = float(state.food_spawned)
    ref.current_step = int(state.step_count)
    ref._game_over = False
    ref._gen_valid_moves()


def ref_view(ref: ForagingEnv, env: LevelBasedForaging) -> np.ndarray:
    """The original's observations with the player-level slots zeroed, as the variant hides them."""
    view = np.stack(ref._make_gym_obs())
    view[:, 3 * env.num_food + 2 :: 3] = 0
    return view


def ref_mask(ref: ForagingEnv) -> np.ndarray:
    return np.array([[a in ref._valid_actions[p] for a in Action] for p in ref.players])


def assert_same_state(ref: ForagingEnv, state: State) -> None:
    assert [tuple(map(int, p)) for p in np.asarray(state.player_pos)] == [p.position for p in ref.players]
    foods = zip(np.asarray(state.food_pos), np.asarray(state.food_level))
    ours = {tuple(map(int, p)): int(lvl) for p, lvl in foods if lvl > 0}
    theirs = {(int(r), int(c)): int(ref.field[r, c]) for r, c in zip(*np.nonzero(ref.field))}
    assert ours == theirs


def assert_same_step(size, players, food, sight, coop, state: State, actions) -> tuple[State, object]:
    """Steps both from `state` with `actions`; asserts agreement; returns the port's result."""
    env, _, step, ref = pair(size, players, food, sight, coop)
    write(ref, env, state)
    _, ref_reward, ref_done, _, _ = ref.step([int(a) for a in actions])
    state, ts = step(state, jnp.asarray(actions, jnp.int32))
    assert_same_state(ref, state)
    np.testing.assert_array_equal(np.asarray(ts.observation.agents_view), ref_view(ref, env))
    np.testing.assert_array_equal(np.asarray(ts.observation.action_mask), ref_mask(ref))
    np.testing.assert_allclose(np.asarray(ts.reward), np.asarray(ref_reward), rtol=1e-6, atol=1e-7)
    assert bool(ts.last()) == bool(ref_done)
    # The original's game ends on the time limit too; termination (discount 0) only when food is gone.
    assert bool(ts.discount[0] == 0) == (ref.field.sum() == 0)
    return state, ts


# --------------------------------------------------------------------------- random situations

SCENARIOS = [  # (size, players, food, sight, coop): dense grids make collisions and loading common
    (6, 6, 1, None, False),
    (7, 9, 2, 2, False),
    (8, 5, 3, 1, True),
    (10, 6, 3, None, False),
]


def random_state(env: LevelBasedForaging, rng: np.random.Generator) -> State:
    """Players anywhere, foods by the spawn rule with random levels, some already eaten."""
    size = env.grid_size
    cells = rng.permutation(size * size)[: env.num_agents]
    players = [divmod(int(c), size) for c in cells]
    foods: list[tuple[tuple[int, int], int]] = []
    for cell in rng.permutation(size * size):
        row, col = divmod(int(cell), size)
        gaps = [(abs(row - r), abs(col - c)) for (r, c), _ in foods]
        spaced = all(max(g) > 1 and set(g) != {0, 2} for g in gaps)
        if 0 < row < size - 1 and 0 < col < size - 1 and (row, col) not in players and spaced:
            foods.append(((row, col), int(rng.integers(1, env.max_food_level + 1))))
        if len(foods) == env.num_food:
            break
    eaten = int(rng.integers(0, len(foods)))  # keep at least one food
    spawned = sum(lvl for _, lvl in foods)
    return make_state(env, players, foods[eaten:], spawned, step=int(rng.integers(0, env.time_limit)))


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    # LOAD twice as likely, so that loading happens often; invalid choices are part of the test.
    return rng.choice(6, size=n, p=[1 / 7] * 5 + [2 / 7])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: "x".join(map(str, s)))
def test_random_episodes_from_reset(scenario):
    env, reset = pair(*scenario)[:2]
    rng = np.random.default_rng(1)
    ref = pair(*scenario)[3]
    for episode in range(4):
        state, ts = reset(jax.random.key(episode))
        write(ref, env, state)
        np.testing.assert_array_equal(np.asarray(ts.observation.agents_view), ref_view(ref, env))
        np.testing.assert_array_equal(np.asarray(ts.observation.action_mask), ref_mask(ref))
        for _ in range(env.time_limit):
            state, ts = assert_same_step(*scenario, state, random_actions(rng, env.num_agents))
            if ts.last():
                break


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scenario=st.sampled_from(SCENARIOS))
def test_random_situations(seed, scenario):
    env = pair(*scenario)[0]
    rng = np.random.default_rng(seed)
    state = random_state(env, rng)
    for _ in range(8):
        state, ts = assert_same_step(*scenario, state, random_actions(rng, env.num_agents))
        if ts.last():
            break


# ---------------------------------------------------------------------------- hand-made cases

N, S, W, E = 1, 2, 3, 4
GRID = (7, 3, 2, None, False)  # 7x7, levels 1, 2, 3, foods up to level 6


def step_grid(players, foods, actions, spawned=None, step=0):
    env = pair(*GRID)[0]
    return assert_same_step(*GRID, make_state(env, players, foods, spawned, step), actions)


def positions(state: State) -> list[tuple[int, int]]:
    return [tuple(map(int, p)) for p in np.asarray(state.player_pos)]


def test_two_players_into_one_cell_neither_moves():
    state, _ = step_grid([(3, 1), (3, 3), (0, 0)], [((5, 5), 2)], [E, W, NONE])
    assert positions(state) == [(3, 1), (3, 3), (0, 0)]


def test_entering_a_staying_players_cell_fails():
    state, _ = step_grid([(3, 1), (3, 2), (0, 0)], [((5, 5), 2)], [E, LOAD, NONE])
    assert positions(state) == [(3, 1), (3, 2), (0, 0)]


def test_following_and_swapping():
    state, _ = step_grid([(3, 1), (3, 2), (0, 0)], [((5, 5), 2)], [E, E, NONE])
    assert positions(state) == [(3, 2), (3, 3), (0, 0)]
    state, _ = step_grid([(3, 1), (3, 2), (0, 0)], [((5, 5), 2)], [E, W, NONE])
    assert positions(state) == [(3, 2), (3, 1), (0, 0)]


def test_following_a_blocked_player_shares_its_cell_as_lbforaging_does():
    # Player 1 is blocked by player 2 heading for the same cell; player 0 still enters its cell.
    state, _ = step_grid([(2, 1), (2, 2), (2, 4)], [((5, 5), 2)], [E, E, W])
    assert positions(state) == [(2, 2), (2, 2), (2, 4)]
    state, _ = assert_same_step(*GRID, state, [NONE, S, NONE])
    assert positions(state) == [(2, 2), (3, 2), (2, 4)]


def test_walking_into_food_or_off_the_grid_is_no_op():
    state, ts = step_grid([(3, 2), (0, 6), (6, 0)], [((3, 3), 2)], [E, N, W])
    assert positions(state) == [(3, 2), (0, 6), (6, 0)]
    assert not ts.observation.action_mask[0, E] and ts.observation.action_mask[0, LOAD]


def test_loading_with_enough_level_splits_the_reward_by_level():
    # Levels 1 and 3 around a level-4 food, 10 levels spawned: rewards 1*4/(4*10) and 3*4/(4*10).
    state, ts = step_grid([(2, 3), (0, 0), (3, 4)], [((3, 3), 4), ((5, 1), 2)], [LOAD, NONE, LOAD], spawned=10)
    np.testing.assert_allclose(np.asarray(ts.reward), [0.1, 0.0, 0.3], rtol=1e-6)
    assert np.asarray(state.food_level).tolist() == [0, 2]
    assert not ts.last()


def test_loading_without_enough_level_fails_and_bystanders_do_not_help():
    # Levels 1 + 2 < 4; the level-3 player beside the food does not LOAD.
    state, ts = step_grid([(2, 3), (4, 3), (3, 4)], [((3, 3), 4)], [LOAD, LOAD, NONE], spawned=4)
    assert np.asarray(ts.reward).tolist() == [0.0, 0.0, 0.0]
    assert np.asarray(state.food_level).tolist() == [4, 0]


def test_eating_the_last_food_terminates():
    state, ts = step_grid([(2, 3), (0, 0), (6, 6)], [((3, 3), 1)], [LOAD, NONE, NONE], spawned=5)
    assert np.asarray(ts.reward).tolist() == pytest.approx([0.2, 0.0, 0.0])
    assert ts.last() and float(ts.discount[0]) == 0.0


def test_time_limit_truncates():
    _, ts = step_grid([(2, 3), (0, 0), (6, 6)], [((3, 3), 5)], [LOAD, NONE, NONE], step=49)
    assert ts.last() and float(ts.discount[0]) == 1.0


def test_food_at_the_bottom_and_right_border():
    state, ts = step_grid([(5, 3), (6, 2), (6, 4)], [((6, 3), 6)], [LOAD, LOAD, LOAD])
    assert np.asarray(ts.reward).sum() == pytest.approx(1.0)
    state, ts = step_grid([(3, 5), (2, 6), (4, 6)], [((3, 6), 3)], [LOAD, NONE, LOAD])
    assert np.asarray(state.food_level).tolist() == [0, 0]


def test_food_at_the_top_border_east_of_a_loader():
    # lbforaging finds food to the west only from column 2 on, as here (level 2 lifts level 2).
    state, ts = step_grid([(5, 5), (0, 4), (1, 2)], [((0, 3), 2)], [NONE, LOAD, NONE])
    assert np.asarray(state.food_level).tolist() == [0, 0]
    assert np.asarray(ts.reward).tolist() == pytest.approx([0.0, 1.0, 0.0])


def test_food_in_row_zero_above_a_loader_crashes_lbforaging_but_not_the_port():
    """A documented difference: lbforaging's lookup skips row 0 and then fails to unpack None."""
    env, _, step, ref = pair(*GRID)
    state = make_state(env, [(0, 0), (1, 3), (5, 5)], [((0, 3), 2)])
    write(ref, env, state)
    with pytest.raises(TypeError):
        ref.step([NONE, LOAD, NONE])
    state, ts = step(state, jnp.asarray([NONE, LOAD, NONE]))
    assert np.asarray(state.food_level).tolist() == [0, 0]
    assert np.asarray(ts.reward).tolist() == pytest.approx([0.0, 1.0, 0.0])


def test_partial_sight_near_the_top_left_corner_sees_farther():
    # Sight 2 from (0, 0): the player window is rows/cols 0..4, the food window 0..2.
    scenario = (7, 3, 2, 2, False)
    state = make_state(pair(*scenario)[0], [(0, 0), (4, 4), (3, 0)], [((3, 3), 2), ((1, 2), 2)])
    _, ts = assert_same_step(*scenario, state, [NONE, NONE, NONE])
    view = np.asarray(ts.observation.agents_view[0])
    assert view.tolist() == [1, 2, 2, -1, -1, 0, 0, 0, 0, 4, 4, 0, 3, 0, 0]


def test_out_of_range_actions_are_none():
    env, _, step = pair(*GRID)[:3]
    state = make_state(env, [(3, 1), (3, 5), (0, 0)], [((5, 5), 2)])
    moved, _ = step(state, jnp.asarray([7, -1, 99]))
    assert positions(moved) == positions(state)
    assert_same_step(*GRID, state, [NONE, NONE, NONE])

"""C-RWARE against its rules (the docstring of envs/crware.py): names, colour rules, observation layout by
hand-computed values, collision resolution cases, and invariants under random play."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jumanji.types import StepType

import envs
from envs import crware
from envs.crware import DOWN, LEFT, RIGHT, UP, ColouredWarehouse, State, resolve_moves
from envs.render import DARK_GREY, PALETTE

NOOP, FWD, TURN_L, TURN_R, TOGGLE = range(5)
# The tiny floor (x 0..9, y 0..10): highways are x in {0, 3, 4, 5, 6, 9} and rows 0, 9, 10;
# shelves at x in {1, 2, 7, 8}, y 1..8 (32, row-major); goals (4, 10) and (5, 10).
TINY = crware.make_layout(1, 3, 8)


def shelf(x: int, y: int) -> int:
    """Index of the shelf that starts at (x, y)."""
    return int(np.flatnonzero((TINY.shelf_cells == (x, y)).all(1))[0])


@pytest.fixture(scope="module")
def env() -> ColouredWarehouse:
    return envs.make("crware-2c-tiny-4ag")


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


def make_state(env: ColouredWarehouse, robots, queue, colours: dict[int, int] | None = None, step_count=0) -> State:
    """robots: (x, y, direction, carried shelf or -1); a carried shelf sits on its robot.
    colours: shelf -> colour, every other shelf has colour 0."""
    shelf_pos = env.layout.shelf_cells.copy()
    for x, y, _, carried in robots:
        if carried >= 0:
            shelf_pos[carried] = (x, y)
    shelf_colour = np.zeros(env.num_shelves, np.int32)
    for s, c in (colours or {}).items():
        shelf_colour[s] = c
    return State(
        agent_pos=jnp.array([r[:2] for r in robots], jnp.int32),
        agent_dir=jnp.array([r[2] for r in robots], jnp.int32),
        carried=jnp.array([r[3] for r in robots], jnp.int32),
        shelf_pos=jnp.asarray(shelf_pos),
        shelf_colour=jnp.asarray(shelf_colour),
        request_queue=jnp.asarray(queue, jnp.int32),
        step_count=jnp.asarray(step_count, jnp.int32),
        key=jax.random.PRNGKey(0),
    )


# --- names ---------------------------------------------------------------------------------------


def test_listed_names_build_and_register():
    for name in crware.NAMES:
        assert isinstance(crware.parse(name), ColouredWarehouse), name
        assert name in envs.names()
    for name in ["crware-2c-tiny-4ag", "crware-2c-tiny-4ag-hard", "crware-2c-small-8ag", "crware-2c-medium-16ag",
                 "crware-4c-large-64ag"]:
        assert name in crware.NAMES
    assert sum(name.startswith("crware-1c") for name in crware.NAMES) >= 2
    assert any(name.endswith("-easy") for name in crware.NAMES)


@pytest.mark.parametrize(
    "name, grid, agent_types, queue, obs_dim, perm",
    [
        ("crware-2c-tiny-4ag", (11, 10), [0, 0, 1, 1], 4, 44, False),
        ("crware-2c-tiny-4ag-hard", (11, 10), [0, 0, 1, 1], 2, 44, False),
        ("crware-2c-tiny-4ag-easy", (11, 10), [0, 0, 1, 1], 8, 44, False),
        ("crware-2c-tiny-5ag-perm", (11, 10), [0, 0, 0, 1, 1], 5, 44, True),
        ("crware-3c-tiny-5ag", (11, 10), [0, 0, 0, 1, 2], 5, 53, False),
        ("crware-1c-small-8ag-hard", (20, 10), [0] * 8, 4, 35, False),
        ("crware-2c-medium-16ag", (20, 16), [0] * 8 + [1] * 8, 16, 44, False),
        ("crware-4c-large-64ag", (29, 16), np.repeat(np.arange(4), 16).tolist(), 64, 62, False),
    ],
)
def test_parse(name, grid, agent_types, queue, obs_dim, perm):
    env = envs.make(name)
    assert (env.layout.height, env.layout.width) == grid
    assert env.agent_types.tolist() == agent_types
    assert env.request_queue_size == queue
    assert env.obs_dim == obs_dim
    assert env.permute_obs is perm
    assert env.num_actions == 5 and env.time_limit == 500 and env.column_height == 8


def test_parse_leaves_other_names():
    for name in ["bps-15a-3c", "rware-tiny-4ag-v2", "lbf-10x10-6p-3f", "crwarehouse-2c-tiny-4ag"]:
        assert crware.parse(name) is None


@pytest.mark.parametrize(
    "name, words",
    [
        ("crware-5c-tiny-4ag", "1 to 4 colours"),
        ("crware-0c-tiny-4ag", "1 to 4 colours"),
        ("crware-2c-huge-4ag", "unknown size"),
        ("crware-2c-tiny-4ag-medium", "not a C-RWARE name"),
        ("crware-2c-tiny", "not a C-RWARE name"),
        ("crware-3c-tiny-2ag", "one per colour"),
        ("crware-1c-tiny-1ag-hard", "request queue size"),
    ],
)
def test_parse_rejects_malformed_crware_names(name, words):
    with pytest.raises(ValueError) as err:
        crware.parse(name)
    assert words in str(err.value) and name in str(err.value) and "\n" not in str(err.value)


def test_colour_blocks():
    assert crware.colour_blocks(4, 2).tolist() == [0, 0, 1, 1]
    assert crware.colour_blocks(5, 2).tolist() == [0, 0, 0, 1, 1]
    assert crware.colour_blocks(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]


# --- layout and reset ----------------------------------------------------------------------------


def test_tiny_layout():
    assert (TINY.height, TINY.width) == (11, 10)
    assert TINY.goals.tolist() == [[4, 10], [5, 10]]
    expected_shelves = [(x, y) for y in range(1, 9) for x in (1, 2, 7, 8)]
    assert [tuple(c) for c in TINY.shelf_cells.tolist()] == expected_shelves
    assert TINY.highway.sum() == 11 * 10 - 32


def test_reset(env):
    state, timestep = jax.jit(env.reset)(jax.random.PRNGKey(3))
    pos = np.asarray(state.agent_pos)
    assert len({tuple(p) for p in pos.tolist()}) == 4
    assert ((pos >= 0) & (pos < [10, 11])).all()
    assert np.asarray(state.carried).tolist() == [-1] * 4
    np.testing.assert_array_equal(state.shelf_pos, TINY.shelf_cells)
    queue = np.asarray(state.request_queue)
    assert len(set(queue.tolist())) == 4 and ((queue >= 0) & (queue < 32)).all()
    assert set(np.asarray(state.shelf_colour).tolist()) == {0, 1}  # 32 shelves: both colours, surely
    assert timestep.step_type == StepType.FIRST and int(state.step_count) == 0
    assert timestep.observation.agents_view.shape == (4, 44)
    np.testing.assert_array_equal(timestep.observation.agent_type, [0, 0, 1, 1])
    assert bool(timestep.observation.action_mask.all())


# --- colour rules --------------------------------------------------------------------------------

# Robots 0 (colour 0) and 2 (colour 1) stand under shelf (1, 1) and (8, 1), facing up into row 0.
UNDER_SHELVES = [(1, 1, UP, -1), (9, 5, UP, -1), (8, 1, UP, -1), (9, 7, UP, -1)]
# The action each colour uses for NOOP: colour 1 performs roll(arange(5), 1)[1] = 0.
IDLE = [NOOP, NOOP, 1, 1]


def test_action_meaning_is_rolled_per_colour(env):
    assert env.action_meaning.tolist() == [[0, 1, 2, 3, 4]] * 2 + [[4, 0, 1, 2, 3]] * 2


@pytest.mark.parametrize(
    "robot, action, cell, direction, carried",
    [
        (0, 0, (1, 1), UP, -1),  # colour 0: NOOP
        (0, 1, (1, 0), UP, -1),  # FORWARD
        (0, 2, (1, 1), LEFT, -1),  # LEFT
        (0, 3, (1, 1), RIGHT, -1),  # RIGHT
        (0, 4, (1, 1), UP, shelf(1, 1)),  # TOGGLE_LOAD
        (2, 0, (8, 1), UP, shelf(8, 1)),  # colour 1: 0 is TOGGLE_LOAD
        (2, 1, (8, 1), UP, -1),  # NOOP
        (2, 2, (8, 0), UP, -1),  # FORWARD
        (2, 3, (8, 1), LEFT, -1),  # LEFT
        (2, 4, (8, 1), RIGHT, -1),  # RIGHT
    ],
)
def test_rotated_actions(env, step, robot, action, cell, direction, carried):
    state = make_state(env, UNDER_SHELVES, [0, 1, 2, 3])
    actions = list(IDLE)
    actions[robot] = action
    new, _ = step(state, jnp.array(actions))
    assert tuple(np.asarray(new.agent_pos[robot]).tolist()) == cell
    assert int(new.agent_dir[robot]) == direction
    assert int(new.carried[robot]) == carried
    others = [r for r in range(4) if r != robot]
    np.testing.assert_array_equal(np.asarray(new.agent_pos)[others], np.asarray(state.agent_pos)[others])
    np.testing.assert_array_equal(np.asarray(new.agent_dir)[others], np.asarray(state.agent_dir)[others])
    np.testing.assert_array_equal(np.asarray(new.carried)[others], [-1] * 3)


def test_out_of_range_actions_are_noop(env, step):
    # Every valid action except NOOP would change these robots (move, turn or load).
    state = make_state(env, UNDER_SHELVES, [0, 1, 2, 3])
    for actions in ([-1, 5, 7, -100], [100, -5, 5, 6], [2**31 - 1, -(2**31), 5, -1]):
        new, timestep = step(state, jnp.array(actions, jnp.int32))
        for field in ("agent_pos", "agent_dir", "carried", "shelf_pos", "request_queue"):
            np.testing.assert_array_equal(getattr(new, field), getattr(state, field))
        assert int(new.step_count) == 1 and float(timestep.reward.sum()) == 0.0


A, B = shelf(1, 2), shelf(7, 3)  # both requested; robot 0 (colour 0) brings A, robot 2 (colour 1) B
QUEUE = [shelf(8, 8), A, B, shelf(2, 8)]
AT_GOALS = [(4, 9, DOWN, A), (9, 5, UP, -1), (5, 9, DOWN, B), (9, 7, UP, -1)]


@pytest.mark.parametrize("colour_b, reward", [(0, [1, 0, 0, 0]), (1, [1, 0, 1, 0])])
def test_delivery_only_by_matching_colour(env, step, colour_b, reward):
    state = make_state(env, AT_GOALS, QUEUE, colours={A: 0, B: colour_b})
    new, timestep = step(state, jnp.array([FWD, NOOP, 2, 1]))  # colour 1 drives forward with 2
    assert np.asarray(new.agent_pos).tolist()[::2] == [[4, 10], [5, 10]]
    assert np.asarray(timestep.reward).tolist() == reward
    queue = np.asarray(new.request_queue).tolist()
    assert [queue[0], queue[3]] == [QUEUE[0], QUEUE[3]] and len(set(queue)) == 4
    assert queue[1] not in QUEUE  # A renewed at goal 0 by a shelf that was not requested
    assert (queue[2] != B) if colour_b == 1 else (queue[2] == B)  # unpaid: B stays requested
    # Standing still on the goals: a wrong-colour shelf never pays; A only if requested again.
    after, timestep = step(new, jnp.array(IDLE))
    assert np.asarray(timestep.reward).tolist() == [float(A in queue), 0, 0, 0]


def test_wrong_colour_robot_on_goal_does_not_block_the_other_goal(env, step):
    # Robot 2 (colour 1) carries the colour-0 shelf A onto goal 0; robot 0 brings B (colour 0) to goal 1.
    robots = [(5, 9, DOWN, B), (9, 5, UP, -1), (4, 9, DOWN, A), (9, 7, UP, -1)]
    state = make_state(env, robots, QUEUE)
    new, timestep = step(state, jnp.array([FWD, NOOP, 2, 1]))
    assert np.asarray(timestep.reward).tolist() == [1, 0, 0, 0]
    queue = np.asarray(new.request_queue).tolist()
    assert queue[1] == A and queue[2] not in QUEUE


# --- observation ---------------------------------------------------------------------------------

S = shelf(1, 2)  # carried by robot 0 to (0, 0): colour 1, requested
OBS_ROBOTS = [(0, 0, RIGHT, S), (1, 0, DOWN, -1), (2, 2, UP, -1), (9, 10, LEFT, -1)]
OBS_QUEUE = [S, shelf(2, 1), shelf(1, 3), shelf(8, 8)]
OBS_COLOURS = {S: 1, shelf(2, 1): 1, shelf(2, 2): 1}  # all others colour 0
E = [0, 0, 0, 0]  # empty or outside cell: [has_robot, colour 0, colour 1, requested]
EXPECTED_OBS = [
    # robot 0 at the corner (0, 0), loaded, facing RIGHT, on a highway
    [0, 0, 1, 0, 0, 0, 1, 1] + E + E + E
    + E + [1, 0, 1, 1] + [1, 0, 0, 0]
    + E + E + [0, 1, 0, 0],
    # robot 1 at (1, 0) facing DOWN
    [1, 0, 0, 0, 1, 0, 0, 1] + E + E + E
    + [1, 0, 1, 1] + [1, 0, 0, 0] + E
    + E + [0, 1, 0, 0] + [0, 0, 1, 1],
    # robot 2 at (2, 2) under a colour-1 shelf, facing UP, off the highways; (1, 2) was emptied
    [2, 2, 0, 1, 0, 0, 0, 0] + [0, 1, 0, 0] + [0, 0, 1, 1] + E
    + E + [1, 0, 1, 0] + E
    + [0, 1, 0, 1] + [0, 1, 0, 0] + E,
    # robot 3 at the opposite corner (9, 10) facing LEFT
    [9, 10, 0, 0, 0, 1, 0, 1] + E + E + E
    + E + [1, 0, 0, 0] + E
    + E + E + E,
]


def test_observation_by_hand(env):
    state = make_state(env, OBS_ROBOTS, OBS_QUEUE, OBS_COLOURS)
    view = jax.jit(env._observe)(state).agents_view
    assert view.shape == (4, 44) and view.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(view), np.array(EXPECTED_OBS, np.float32))


def test_permuted_observation():
    plain, permuted = envs.make("crware-2c-tiny-4ag"), envs.make("crware-2c-tiny-4ag-perm")
    state = make_state(plain, OBS_ROBOTS, OBS_QUEUE, OBS_COLOURS)
    perms = [np.random.default_rng(c).permutation(44) for c in (0, 1)]
    assert (perms[0] != perms[1]).any()
    expected = np.stack([np.array(EXPECTED_OBS[a], np.float32)[perms[c]] for a, c in enumerate([0, 0, 1, 1])])
    np.testing.assert_array_equal(np.asarray(jax.jit(permuted._observe)(state).agents_view), expected)


# --- collision resolution on abstract cells ------------------------------------------------------


def moves(start: list[int], target: list[int]) -> list[bool]:
    robot_at = np.full(16, -1)
    robot_at[start] = np.arange(len(start))
    return np.asarray(jax.jit(resolve_moves)(jnp.array(start), jnp.array(target), jnp.asarray(robot_at))).tolist()


@pytest.mark.parametrize(
    "start, target, expected",
    [
        ([2, 1, 0], [3, 2, 1], [True, True, True]),  # queue into a free cell
        ([2, 1, 0, 3], [3, 2, 1, 3], [False] * 4),  # queue behind a robot that stays
        ([0, 1, 2, 3], [1, 2, 3, 0], [True] * 4),  # ring of four
        ([0, 1, 2, 3, 4], [1, 2, 3, 0, 0], [True] * 4 + [False]),  # ring with a robot queuing into it
        ([0, 1, 2], [1, 2, 0], [True] * 3),  # ring of three (not on a grid, but rware moves it)
        ([0, 1, 2], [1, 0, 0], [False] * 3),  # swap with a robot queuing behind
        ([0, 2], [1, 1], [True, False]),  # two into one cell: lower rank
        ([2, 0], [1, 1], [True, False]),
        ([5, 3, 2], [4, 4, 3], [False, True, True]),  # the longer queue wins
        ([2, 5, 6, 3], [3, 4, 5, 4], [True, False, False, True]),  # equal queues: robot 3's rank is 0
        ([4, 5, 6, 7], [4, 5, 6, 7], [False] * 4),  # nobody moves
    ],
)
def test_resolve_moves(start, target, expected):
    assert moves(start, target) == expected


# --- time limit, rendering -------------------------------------------------------------


def test_truncation_at_the_time_limit(env, step):
    state = make_state(env, UNDER_SHELVES, [0, 1, 2, 3], step_count=498)
    state, timestep = step(state, jnp.array(IDLE))
    assert timestep.step_type == StepType.MID
    state, timestep = step(state, jnp.array(IDLE))
    assert timestep.step_type == StepType.LAST and int(state.step_count) == 500
    np.testing.assert_array_equal(timestep.discount, np.ones(4))


def test_render(env, step, tmp_path):
    state = make_state(env, OBS_ROBOTS, OBS_QUEUE, OBS_COLOURS)
    img = env.render(state)
    assert img.shape == (11 * 24, 10 * 24, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[10 * 24 + 5, 4 * 24 + 5], DARK_GREY)  # goal (4, 10)
    np.testing.assert_array_equal(img[2 * 24 + 15, 2 * 24 + 12], PALETTE[1])  # robot 2, colour 1
    np.testing.assert_array_equal(img[0 * 24 + 15, 0 * 24 + 12], PALETTE[0])  # robot 0, colour 0
    np.testing.assert_array_equal(img[1 * 24 + 2, 2 * 24 + 12], [0, 0, 0])  # requested (2, 1): frame
    assert (img[1 * 24 + 2, 1 * 24 + 12] != 0).any()  # (1, 1) is not requested: no frame
    path = env.render_episode([state, step(state, jnp.array([TURN_L] * 4))[0]], str(tmp_path / "episode.gif"))
    from PIL import Image

    assert Image.open(path).n_frames == 2


# --- invariants under random play ----------------------------------------------------------------

DENSE = ColouredWarehouse(num_colours=2, num_agents=20, request_queue_size=16)
COPIES, STEPS = 4, 40


@jax.jit
@jax.vmap
def _rollout(key: jax.Array):
    """Random play of one copy (vmapped), out-of-range actions included: the states before and
    after every step, and the rewards."""
    reset_key, play_key = jax.random.split(key)
    state, _ = DENSE.reset(reset_key)

    def body(state, key):
        action = jax.random.randint(key, (DENSE.num_agents,), -1, 7)
        new, timestep = DENSE.step(state, action)
        return new, (state, new, timestep.reward)

    return jax.lax.scan(body, state, jax.random.split(play_key, STEPS))[1]


def check_step(before: State, after: State, reward: np.ndarray) -> None:
    layout, n, s = DENSE.layout, DENSE.num_agents, DENSE.num_shelves
    pos, shelf_pos, carried = after.agent_pos, after.shelf_pos, after.carried
    assert ((pos >= 0) & (pos < [layout.width, layout.height])).all()
    assert len({tuple(p) for p in pos.tolist()}) == n  # robots never share a cell
    assert len({tuple(p) for p in shelf_pos.tolist()}) == s  # nor do shelves, all still there
    loaded = carried[carried >= 0]
    assert ((carried >= -1) & (carried < s)).all() and len(set(loaded.tolist())) == len(loaded)
    np.testing.assert_array_equal(shelf_pos[loaded], pos[carried >= 0])  # on their robot
    resting = np.setdiff1d(np.arange(s), loaded)
    assert not layout.highway[shelf_pos[resting, 1], shelf_pos[resting, 0]].any()
    still = np.setdiff1d(resting, before.carried)  # shelves nobody carried stayed put
    np.testing.assert_array_equal(shelf_pos[still], before.shelf_pos[still])
    step_len = np.abs(pos - before.agent_pos).sum(1)
    assert (step_len <= 1).all()
    assert (after.agent_dir[step_len == 1] == before.agent_dir[step_len == 1]).all()
    queue = after.request_queue
    assert len(set(queue.tolist())) == DENSE.request_queue_size and ((queue >= 0) & (queue < s)).all()
    assert set(np.unique(reward)) <= {0.0, 1.0} and reward.sum() <= 2
    # Paid robots stand on a goal with a shelf of their colour that was requested. (With two
    # deliveries in a step, goal 0's renewal may request goal 1's shelf, and goal 1's renewal
    # may request goal 0's shelf again.)
    two = reward.sum() == 2
    for robot in np.flatnonzero(reward):
        assert tuple(pos[robot]) in {tuple(g) for g in layout.goals.tolist()}
        delivered = carried[robot]
        assert after.shelf_colour[delivered] == DENSE.agent_types[robot]
        assert delivered in before.request_queue or two
        assert delivered not in queue or two


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_invariants_under_random_play(seed):
    before, after, reward = jax.tree.map(np.asarray, _rollout(jax.random.split(jax.random.PRNGKey(seed), COPIES)))
    assert reward.shape == (COPIES, STEPS, DENSE.num_agents)
    for copy in range(COPIES):
        for t in range(STEPS):
            check_step(*jax.tree.map(lambda x: x[copy, t], (before, after)), reward[copy, t])


# --- implementation cross-checks -----------------------------------------------------------------


def _chi_square_ok(counts: np.ndarray) -> bool:
    """Counts consistent with a uniform distribution (chi-square far below a ~1e-6 tail)."""
    expected = counts.sum() / counts.size
    chi2 = ((counts - expected) ** 2 / expected).sum()
    df = counts.size - 1
    return chi2 < df + 7 * np.sqrt(2 * df)


@pytest.mark.parametrize("n, k", [(110, 4), (32, 16), (240, 17), (464, 64)])
def test_choose_distinct_is_a_partial_fisher_yates(n, k):
    """Both the unrolled (k <= UNROLL_DRAWS) and the looped form swap position i with position
    i + words[i] % (n - i), as numpy does here."""
    words = np.random.default_rng(n * k).integers(0, 2**32, (40, k), dtype=np.uint64).astype(np.uint32)
    got = np.asarray(jax.jit(jax.vmap(lambda w: crware.choose_distinct(w, n)))(jnp.asarray(words)))
    for row, sample in zip(words, got):
        values = np.arange(n)
        for i in range(k):
            j = i + int(row[i]) % (n - i)
            values[i], values[j] = values[j], values[i]
        assert sample.tolist() == values[:k].tolist()


@pytest.mark.parametrize("colours", [2, 3, 4])
def test_reset_draws_are_uniform(colours):
    env = ColouredWarehouse(num_colours=colours, num_agents=4, request_queue_size=4)
    copies = 6000
    states, timesteps = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(colours), copies))
    cells = np.asarray(states.agent_pos[..., 1] * env.layout.width + states.agent_pos[..., 0])
    queue = np.asarray(states.request_queue)
    assert all(len(set(row)) == 4 for row in cells.tolist()) and all(len(set(row)) == 4 for row in queue.tolist())
    for robot in range(4):
        assert _chi_square_ok(np.bincount(cells[:, robot], minlength=11 * 10))
        assert _chi_square_ok(np.bincount(np.asarray(states.agent_dir)[:, robot], minlength=4))
    for entry in range(4):
        assert _chi_square_ok(np.bincount(queue[:, entry], minlength=32))
    # Every ordering of two robots' cells is as likely (the sample is in random order).
    assert abs((cells[:, 0] < cells[:, 1]).mean() - 0.5) < 0.03
    assert abs((queue[:, 2] < queue[:, 3]).mean() - 0.5) < 0.03
    assert _chi_square_ok(np.bincount(np.asarray(states.shelf_colour).reshape(-1), minlength=colours))
    np.testing.assert_array_equal(states.shelf_pos, np.broadcast_to(TINY.shelf_cells, (copies, 32, 2)))
    # The reset's observation (built from the home layout) is the state's observation.
    observed = jax.jit(jax.vmap(env._observe))(states).agents_view
    np.testing.assert_array_equal(timesteps.observation.agents_view, observed)


def _play(env: ColouredWarehouse, copies: int, steps: int, seed: int):
    """Random play (many forward moves and toggles): every state, the time steps of the steps
    leaving them, and `_observe` of the states they reach."""

    @jax.jit
    @jax.vmap
    def rollout(key):
        reset_key, play_key = jax.random.split(key)
        state, _ = env.reset(reset_key)

        def body(state, key):
            action = jax.random.choice(key, jnp.array([-1, 0, 1, 1, 1, 2, 3, 4, 4, 4]), (env.num_agents,))
            new, timestep = env.step(state, action)
            return new, (state, timestep, env._observe(new).agents_view)

        return jax.lax.scan(body, state, jax.random.split(play_key, steps))[1]

    return rollout(jax.random.split(jax.random.PRNGKey(seed), copies))


@pytest.mark.parametrize("name", ["crware-2c-tiny-4ag", pytest.param("crware-2c-tiny-4ag-perm", marks=pytest.mark.slow),
                                  pytest.param("crware-4c-large-64ag", marks=pytest.mark.slow)])
def test_step_observation_is_the_observation_of_the_new_state(name):
    """The step builds its observation from the shelves before the move (plus the ones on the
    robots); it must equal the observation of the state it returns."""
    env = envs.make(name)
    _, timestep, observed = _play(env, 8, 60, 0)
    np.testing.assert_array_equal(timestep.observation.agents_view, observed)


@pytest.mark.slow  # three compilations of the dense scenario
def test_lookup_strategies_agree(monkeypatch):
    """Small look-ups compare every query with every key, big ones go through a scattered table
    (COMPARE_KEYS, COMPARE_PAIRS); forcing either everywhere changes nothing."""
    runs = []
    for keys, pairs in [(crware.COMPARE_KEYS, crware.COMPARE_PAIRS), (0, 0), (10**6, 10**9)]:
        monkeypatch.setattr(crware, "COMPARE_KEYS", keys)
        monkeypatch.setattr(crware, "COMPARE_PAIRS", pairs)
        runs.append(_play(DENSE, 4, 25, 1))  # traced afresh each time
    for run in runs[1:]:
        jax.tree.map(np.testing.assert_array_equal, runs[0], run)

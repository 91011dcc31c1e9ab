"""Coloured Multi-Robot Warehouse (C-RWARE): robots of fixed colours fetch requested shelves.

Rules (plain RWARE as in `rware` 2.0 on the package index, plus the colour fork's changes):
- Grid of `(column_height + 1) * shelf_rows + 2` rows by `3 * shelf_columns + 1` columns. Cell
  (x, y) is a highway when `x % 3 == 0`, or `y % (column_height + 1) == 0`, or it is in the last
  row, or it is in the two middle columns `W // 2 - 1, W // 2` below row `H - column_height - 3`
  (the queue to the goals). Every other cell holds a shelf at reset; shelves are numbered in
  row-major order. The goals are the two middle cells of the last row, `W // 2 - 1` first.
- Robots face UP (y - 1), DOWN (y + 1), LEFT (x - 1) or RIGHT (x + 1), numbered 0..3 in that
  order. Actions: 0 NOOP, 1 FORWARD, 2 LEFT (turn counter-clockwise), 3 RIGHT (turn clockwise),
  4 TOGGLE_LOAD. FORWARD into the outer wall keeps the robot where it is. TOGGLE_LOAD picks up the
  shelf under an unloaded robot, or puts the carried shelf down when the robot is not on a highway.
  A carried shelf moves with its robot. Unloaded robots drive under shelves; a loaded robot cannot
  drive into a cell holding a shelf unless a loaded robot stands there (it may be leaving).
- Simultaneous moves, resolved as rware 2.0 does on its graph of "cell -> target cell" edges (one
  per robot; a robot that does not move points at its own cell): in a group of robots that
  follow each other into a free cell, only the longest chain moves; a closed ring of three or more
  robots all moving rotates; two robots trying to swap cells both stay, and so does everyone
  queued behind a robot that stays. Among chains of equal length that enter the same cell, the
  one whose cell comes first in rware's graph wins, i.e. the smallest
  `min(robot standing in the cell, robots driving into the cell)`.
- Colours: colour c has `N // C` robots, colour 0 also the remainder, in contiguous blocks (4 robots
  and 2 colours: [0, 0, 1, 1]). Every shelf gets a uniformly random colour at each reset. Robot of
  colour c taking action a performs `roll(arange(5), c)[a]` (colour 1: a=0 is TOGGLE_LOAD).
- Requests: a queue of `request_queue_size` distinct shelves, colour-blind, drawn uniformly at
  reset. After the moves, for each goal in order: if a robot there carries a requested shelf of its
  own colour, that robot alone earns +1 and the shelf's queue entry is replaced by a uniformly
  drawn shelf that is not requested. A shelf of another colour earns nothing and stays requested.
- Observation (float32, `8 + 9 * (C + 2)`): `[x, y, carrying, direction one-hot (4), on_highway]`,
  then the 3x3 window around the robot in row-major order (own cell included, zero outside the
  grid), each cell `[has_robot, shelf colour one-hot (C), shelf requested]`; carried shelves count
  in their robot's cell. With `permute_obs` (name suffix `-perm`) the vector of a robot of colour c
  is reordered by the fixed permutation `numpy.random.default_rng(c).permutation(obs_dim)`.
- Episodes end by the time limit only (500 steps, truncation, discount 1).

Deliberate differences from rware 2.0:
- Ties between equally long chains entering one cell: rware iterates sub-graphs in the order of a
  Python hash set whenever a connected group spans fewer than half of its graph's nodes, so its
  winner then depends on CPython's hashes of the coordinate tuples. This port always uses rware's
  other rule (graph insertion order, stated above); `tests/test_crware_reference.py` pins both.
- Out-of-range actions are performed as NOOP (rware raises ValueError).
- The time limit is a truncation (discount 1); rware 2.0 returns it as `terminated`.
- Random draws (robot cells and directions, shelf colours, the request queue and its replacements)
  follow the same distributions as rware through JAX's random numbers, so not the same samples.
  A reset takes all its draws from one block of 32-bit words (no sort): a draw from n values is a
  word modulo n (bias below n / 2**32; exact for directions and for 1, 2 or 4 colours).
- Only what the C-RWARE tasks use: no messages, no inactivity limit, individual rewards, the
  fork's vector observation (no image observations, no neighbour directions).

Implementation notes (speed on a CPU, where a vmapped gather or scatter goes element by element
and a sort is very slow): the state holds only what the rules need. Each step scatters the resting
shelves once into a padded grid (codes `shelf * C + colour`), which answers the move rules and,
with one 3x3 slice per robot, the observation (the carried and dropped shelves come from the
robots). Look-ups with few keys (robots, queue) compare every pair instead of scattering
(`COMPARE_KEYS`, `COMPARE_PAIRS`). A reset draws its distinct cells and requests by a partial
Fisher-Yates shuffle (`choose_distinct`) and reads its windows from a constant table of the home
layout.
"""
from __future__ import annotations


import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import TimeStep

from envs import render as draw
from envs import scenarios
from envs.scenarios import COLUMN_HEIGHT, Layout, make_layout
from envs.core import MultiAgentEnv, Observation

NOOP, FORWARD, TURN_LEFT, TURN_RIGHT, TOGGLE_LOAD = range(5)
NUM_ACTIONS = 5
UP, DOWN, LEFT, RIGHT = range(4)
# (dx, dy) of a FORWARD step per direction; y grows downwards as in rware.
STEP = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], np.int32)
# New direction after a clockwise (RIGHT) or counter-clockwise (LEFT) turn, per direction.
CLOCKWISE = np.array([RIGHT, LEFT, UP, DOWN], np.int32)
COUNTER_CLOCKWISE = np.array([LEFT, RIGHT, DOWN, UP], np.int32)

TIME_LIMIT = 500

NAMES = scenarios.CRWARE_NAMES


def colour_blocks(num_agents: int, num_colours: int) -> np.ndarray:
    """Colour of each robot: contiguous blocks of N // C, colour 0 also taking the remainder."""
    sizes = [num_agents // num_colours] * num_colours
    sizes[0] += num_agents % num_colours
    return np.repeat(np.arange(num_colours), sizes).astype(np.int32)


@chex.dataclass(frozen=True)
class State:
    agent_pos: chex.Array  # (N, 2) int32 (x, y)
    agent_dir: chex.Array  # (N,) int32, UP/DOWN/LEFT/RIGHT
    carried: chex.Array  # (N,) int32 index of the carried shelf, -1 for none
    shelf_pos: chex.Array  # (S, 2) int32 (x, y); a carried shelf sits on its robot's cell
    shelf_colour: chex.Array  # (S,) int32
    request_queue: chex.Array  # (Q,) int32 distinct shelf indices
    step_count: chex.Array  # ()
    key: chex.PRNGKey


# Look-ups with at most this many keys, and at most COMPARE_PAIRS query-key pairs, compare every
# query with every key (a few fused vector operations); bigger ones scatter the keys into a table
# and gather from it. On a CPU the compare is the cheaper of the two for the small tasks, the table
# for 64 robots.
COMPARE_KEYS = 16
COMPARE_PAIRS = 1024
# Samples of up to this many distinct values unroll their partial Fisher-Yates shuffle.
UNROLL_DRAWS = 16


def match_max(queries: chex.Array, keys: chex.Array, values: chex.Array, fill: int, size: int) -> chex.Array:
    """For each query q: the largest of `fill` and the `values[i]` whose `keys[i] == q`.

    Queries lie in [0, size); keys outside [0, size) (such as -1) match nothing."""
    if keys.shape[0] <= COMPARE_KEYS and keys.shape[0] * queries.size <= COMPARE_PAIRS:
        found = jnp.max(jnp.where(queries[..., None] == keys, values, fill), axis=-1)
        return jnp.maximum(found, fill)
    keys = jnp.where((keys >= 0) & (keys < size), keys, size)  # one spare slot for the misses
    return jnp.full(size + 1, fill, values.dtype).at[keys].max(values)[queries]


def choose_distinct(words: chex.Array, n: int) -> chex.Array:
    """`len(words)` distinct values of [0, n) in uniformly random order (a uniformly random ordered
    sample without replacement, as `jax.random.choice(..., replace=False)` draws it, without its
    sort): a partial Fisher-Yates shuffle of `arange(n)` driven by the uint32 `words`. Step i swaps
    position i with position `i + words[i] % (n - i)`, so each draw is uniform up to a bias below
    n / 2**32."""
    k = words.shape[0]
    if k > UNROLL_DRAWS:

        def swap(i, values):
            j = (words[i] % (n - i).astype(jnp.uint32)).astype(jnp.int32) + i
            ij = jnp.stack([i, j])  # one gather and one scatter (i == j writes one value twice)
            return values.at[ij].set(values[ij[::-1]])

        return jax.lax.fori_loop(0, k, swap, jnp.arange(n, dtype=jnp.int32), unroll=4)[:k]
    # Unrolled without the array: position p holds the value last swapped into it, else p.
    # Position i is never read again after step i, so only the values moved to j need keeping.
    moved: list[tuple[chex.Array, chex.Array]] = []

    def value_at(p):
        value = jnp.asarray(p, jnp.int32)
        for position, moved_value in moved:
            value = jnp.where(position == p, moved_value, value)
        return value

    out = []
    for i in range(k):
        j = (words[i] % np.uint32(n - i)).astype(jnp.int32) + i
        out.append(value_at(j))
        moved.append((j, value_at(i)))
    return jnp.stack(out)


def uniform_small(words: chex.Array, k: int, count: int) -> chex.Array:
    """`count` independent uniform values of [0, k) from uint32 `words` (see `words_for`): exact
    bit fields when k is a power of two, else one word each, reduced modulo k (bias below k / 2**32)."""
    if k == 1:
        return jnp.zeros(count, jnp.int32)
    if k & (k - 1) == 0:
        bits = k.bit_length() - 1
        shifts = np.arange(32 // bits, dtype=np.uint32) * bits
        return ((words[:, None] >> shifts) & np.uint32(k - 1)).reshape(-1)[:count].astype(jnp.int32)
    return (words % np.uint32(k)).astype(jnp.int32)


def words_for(k: int, count: int) -> int:
    """How many uint32 words `uniform_small(words, k, count)` uses."""
    if k == 1:
        return 0
    if k & (k - 1) == 0:
        return -(-count // (32 // (k.bit_length() - 1)))
    return count


def resolve_moves(start: chex.Array, target: chex.Array, robot_at: chex.Array) -> chex.Array:
    """Which robots move, given start and target cells (flat) and the robot index of each cell.

    Each moving robot follows the robot standing in its target cell, if any, so the robots form
    queues that end either in a robot driving into a free cell, in a robot that stays, or in a
    ring. rware moves rings of three or more robots and, of the queues that end in one free cell,
    the longest line of robots (ties: smallest `min(robot, robots driving into its cell)` at each
    merge); everything else stays. Pointer doubling answers it in O(log N) vectorised rounds.
    """
    moving = target != start
    return _resolve(moving, jnp.where(moving, robot_at[target], -1), target, robot_at.shape[0])


def _resolve(moving: chex.Array, ahead: chex.Array, target: chex.Array, num_cells: int) -> chex.Array:
    """`resolve_moves` given the robot standing in each moving robot's target cell (`ahead`, -1
    for none or not moving)."""
    n = moving.shape[0]
    ids = jnp.arange(n, dtype=jnp.int32)
    has_ahead = ahead >= 0
    # jumps[k]: the robot 2**k places ahead; a queue's front robot points at itself. 2**K >= N.
    jumps = [jnp.where(has_ahead, ahead, ids)]
    for _ in range(max(1, (n - 1).bit_length()) - 1):
        jumps.append(take(jumps[-1], jumps[-1]))
    front = take(jumps[-1], jumps[-1])  # past every queue: its front robot, or a robot on a ring
    depth = has_ahead.astype(jnp.int32)  # robots ahead of me up to the front
    for jump in jumps:
        depth = depth + take(depth, jump)
    # Depth of the last robot queued behind me: rounds k = K-1..0 pass the value of each robot
    # to the robot 2**k ahead, so every robot hears from all the robots behind it.
    deepest = depth
    for jump in reversed(jumps):
        deepest = jnp.maximum(deepest, match_max(ids, jump, deepest, -1, n))
    # rware adds a cell to its graph when its robot, or a robot driving into it, comes up first.
    rank = jnp.minimum(ids, -match_max(ids, ahead, -ids, -n, n))
    # Of the robots driving into one cell (all at the same depth) the one with the longest queue
    # behind it wins, then the lowest rank.
    score = jnp.where(moving, deepest * (n + 1) + (n - rank), -1)
    clear = moving & (score == match_max(target, target, score, -1, num_cells))
    for jump in jumps:  # every robot up to the front won its cell
        clear = clear & take(clear, jump)
    # Rings map onto themselves, so every ring robot is some robot's `front`; queue robots are not.
    on_ring = (match_max(ids, front, jnp.ones(n, jnp.int32), 0, n) > 0) & has_ahead
    swap = on_ring & (take(jumps[0], jumps[0]) == ids)
    into_free_cell = take(moving & ~has_ahead, front)
    return jnp.where(on_ring, ~swap, into_free_cell & clear)


def nth_unrequested(queue: chex.Array, draw: chex.Array, num_shelves: int) -> chex.Array:
    """The `draw`-th (from 0) shelf of [0, num_shelves) that the queue of distinct shelves does
    not hold."""
    q = queue.shape[0]
    if q <= COMPARE_KEYS:
        # x = draw + (requested shelves below x), and a requested shelf r is below x exactly when
        # the shelves below r that are not requested number at most `draw`.
        requested_below = jnp.sum(queue < queue[:, None], axis=1, dtype=jnp.int32)
        return draw + jnp.sum(queue - requested_below <= draw, dtype=jnp.int32)
    # The smallest x with more than `draw` unrequested shelves in [0, x], by bisection: a handful
    # of compares with the queue instead of a cumulative sum over every shelf.
    low, high = jnp.zeros_like(draw), jnp.full_like(draw, num_shelves - 1)
    for _ in range(max(1, (num_shelves - 1).bit_length())):
        middle = (low + high) // 2
        enough = middle + 1 - jnp.sum(queue <= middle, dtype=draw.dtype) > draw
        high = jnp.where(enough, middle, high)
        low = jnp.where(enough, low, middle + 1)
    return low.astype(queue.dtype)


def take(x: chex.Array, index: chex.Array) -> chex.Array:
    """`x[index]` for a vector x; short vectors compare the indices with every position instead of
    gathering (which a CPU does one element at a time)."""
    n = x.shape[0]
    if n > COMPARE_KEYS:
        return x[index]
    hit = index[..., None] == np.arange(n)
    if x.dtype == jnp.bool_:
        return jnp.any(hit & x, axis=-1)
    return jnp.sum(jnp.where(hit, x, 0), axis=-1, dtype=x.dtype)


def _lookup(table: np.ndarray, index: chex.Array) -> chex.Array:
    """`table[index]` for a short constant table, as a chain of selects."""
    out = jnp.full_like(index, table[0])
    for k in range(1, len(table)):
        out = jnp.where(index == k, table[k], out)
    return out


class ColouredWarehouse(MultiAgentEnv[State]):
    """C-RWARE; see the module docstring for the rules and the differences from rware."""

    def __init__(
        self,
        num_colours: int = 2,
        shelf_rows: int = 1,
        shelf_columns: int = 3,
        num_agents: int = 4,
        request_queue_size: int = 4,
        column_height: int = COLUMN_HEIGHT,
        time_limit: int = TIME_LIMIT,
        permute_obs: bool = False,
    ):
        self.layout = scenarios.crware_layout(num_colours, shelf_rows, shelf_columns, column_height, num_agents,
                                              request_queue_size)
        num_cells = self.layout.height * self.layout.width
        num_shelves = len(self.layout.shelf_cells)
        self.num_colours = num_colours
        self.shelf_rows, self.shelf_columns, self.column_height = shelf_rows, shelf_columns, column_height
        self.num_shelves = num_shelves
        self.request_queue_size = request_queue_size
        self.permute_obs = permute_obs
        self.num_agents = num_agents
        self.num_actions = NUM_ACTIONS
        self.obs_dim = 8 + 9 * (num_colours + 2)
        self.time_limit = time_limit
        self.agent_types = colour_blocks(num_agents, num_colours)
        # Row a: the action robot a performs for each of its 5 action indices.
        self.action_meaning = np.stack([np.roll(np.arange(NUM_ACTIONS), c) for c in self.agent_types])
        perms = [
            np.random.default_rng(c).permutation(self.obs_dim) if permute_obs else np.arange(self.obs_dim)
            for c in range(num_colours)
        ]
        self.obs_permutation = np.stack([perms[c] for c in self.agent_types])
        # Constant tables (numpy, so they become constants of the compiled programs). The shelf
        # grid is padded by one empty cell on each side (cells `(y + 1) * (width + 2) + x + 1`), so
        # every 3x3 window is one slice of it.
        height, width = self.layout.height, self.layout.width
        self._padded = (height + 2, width + 2)
        self._highway = self.layout.highway.reshape(-1)
        self._goal_cells = [int(y * width + x) for x, y in self.layout.goals]
        home = np.full((height + 2, width + 2), -1, np.int32)  # shelf resting on each cell at reset
        home[self.layout.shelf_cells[:, 1] + 1, self.layout.shelf_cells[:, 0] + 1] = np.arange(num_shelves)
        y, x = np.divmod(np.arange(num_cells), width)
        dy, dx = np.divmod(np.arange(9), 3)  # the 3x3 window in row-major order
        self._home_window = home[y[:, None] + dy, x[:, None] + dx]  # (cells, 9): shelves around each cell
        self._window_offset = (dy * (width + 2) + dx).astype(np.int32)  # window cells from the top left
        n, q = num_agents, request_queue_size
        # Words of one reset's random draw: cells, queue, directions, colours.
        self._reset_words = np.cumsum([0, n, q, words_for(4, n), words_for(num_colours, num_shelves)])
        super().__init__()

    def __repr__(self) -> str:
        return (
            f"ColouredWarehouse(num_colours={self.num_colours}, shelf_rows={self.shelf_rows}, "
            f"shelf_columns={self.shelf_columns}, num_agents={self.num_agents}, "
            f"request_queue_size={self.request_queue_size}, permute_obs={self.permute_obs})"
        )

    def reset(self, key: chex.PRNGKey) -> tuple[State, TimeStep[Observation]]:
        width, n, c = self.layout.width, self.num_agents, self.num_colours
        key, draw_key = jax.random.split(key)
        # One draw of random bits for everything (no sorting: see `choose_distinct`).
        words = jax.random.bits(draw_key, (int(self._reset_words[-1]),), jnp.uint32)
        part = [words[a:b] for a, b in zip(self._reset_words[:-1], self._reset_words[1:])]
        cells = choose_distinct(part[0], self.layout.height * width)
        agent_pos = jnp.stack([cells % width, cells // width], 1)
        agent_dir = uniform_small(part[2], 4, n)
        shelf_colour = uniform_small(part[3], c, self.num_shelves)
        queue = choose_distinct(part[1], self.num_shelves)
        state = State(
            agent_pos=agent_pos,
            agent_dir=agent_dir,
            carried=jnp.full((n,), -1, jnp.int32),
            shelf_pos=jnp.asarray(self.layout.shelf_cells),
            shelf_colour=shelf_colour,
            request_queue=queue,
            step_count=jnp.zeros((), jnp.int32),
            key=key,
        )
        # Every shelf rests on its home cell: a constant table holds the shelves of each window.
        shelves = jnp.asarray(self._home_window)[cells]
        resting = jnp.where(shelves >= 0, shelves * c + shelf_colour[jnp.maximum(shelves, 0)], -1)
        view = self._view(agent_pos, agent_dir, state.carried, state.carried, resting, queue)
        return state, self.first_timestep(view)

    def step(self, state: State, action: chex.Array) -> tuple[State, TimeStep[Observation]]:
        n, s, c, width = self.num_agents, self.num_shelves, self.num_colours, self.layout.width
        ids = jnp.arange(n, dtype=jnp.int32)
        colour = jnp.asarray(self.agent_types)
        valid = (action >= 0) & (action < NUM_ACTIONS)
        act = jnp.where(valid, (action - colour) % NUM_ACTIONS, NOOP)  # = action_meaning[ids, action]

        x, y = state.agent_pos[:, 0], state.agent_pos[:, 1]
        cell = y * width + x
        d = state.agent_dir
        ahead_x = jnp.clip(x + (d == RIGHT) - (d == LEFT), 0, width - 1)
        ahead_y = jnp.clip(y + (d == DOWN) - (d == UP), 0, self.layout.height - 1)
        forward = act == FORWARD
        target = jnp.where(forward, ahead_y * width + ahead_x, cell)
        loaded = state.carried >= 0
        # The robot standing in each target cell (-1: none) and whether it is loaded, in one look-up.
        there = match_max(target, cell, 2 * ids + loaded, -1, self.layout.height * width)
        loaded_robot_there = (there >= 0) & (there % 2 == 1)
        rest = self._resting(state)
        padded_cell = self._pad(x, y)
        # A loaded robot cannot push into a shelf, except one carried by a robot that may leave
        # (a carried shelf is always on its robot, never with a resting one).
        blocked = rest[jnp.where(forward, self._pad(ahead_x, ahead_y), padded_cell)] >= 0
        moving = (target != cell) & ~(loaded & blocked & ~loaded_robot_there)
        target = jnp.where(moving, target, cell)
        moved = _resolve(moving, jnp.where(moving, there >> 1, -1), target, self.layout.height * width)
        new_cell = jnp.where(moved, target, cell)
        new_pos = jnp.stack([new_cell % width, new_cell // width], 1)

        turned = jnp.where(act == TURN_LEFT, _lookup(COUNTER_CLOCKWISE, d), _lookup(CLOCKWISE, d))
        agent_dir = jnp.where((act == TURN_LEFT) | (act == TURN_RIGHT), turned, d)
        # Toggling robots stay put; an unloaded robot's cell holds at most a resting shelf.
        on_highway = jnp.asarray(self._highway)[cell]
        pick = (act == TOGGLE_LOAD) & ~loaded
        drop = (act == TOGGLE_LOAD) & loaded & ~on_highway
        under = rest[padded_cell]  # code of the resting shelf under each robot
        carried = jnp.where(pick, under // c, jnp.where(drop, -1, state.carried))  # -1 // c == -1
        # Carried shelves (before the toggles: a toggling robot did not move) follow their robot.
        shelf_pos = state.shelf_pos.at[jnp.where(loaded, state.carried, s)].set(new_pos, mode="drop")
        # The shelf in each robot's cell that the resting shelves before the step do not show: a
        # carried one, or one dropped this step (the resting ones picked are now carried).
        on_robot = jnp.where(drop, state.carried, carried)
        on_robot = jnp.where(
            on_robot >= 0, on_robot * c + state.shelf_colour[jnp.maximum(on_robot, 0)], -1
        )  # shelf codes (shelf * C + colour)

        key, draw_key = jax.random.split(state.key)
        # The k-th shelf that is not requested replaces a delivered one: always S - Q candidates.
        draws = jax.random.randint(draw_key, (len(self._goal_cells),), 0, s - self.request_queue_size)
        reward = jnp.zeros(n, jnp.float32)
        queue = state.request_queue
        carried_code = jnp.where(carried >= 0, on_robot, -1)  # a dropped shelf is no longer carried
        for goal, draw in zip(self._goal_cells, draws):
            queue, paid = self._deliver(goal, draw, new_cell, carried_code, queue)
            reward = reward + paid
        new_state = State(
            agent_pos=new_pos,
            agent_dir=agent_dir,
            carried=carried,
            shelf_pos=shelf_pos,
            shelf_colour=state.shelf_colour,
            request_queue=queue,
            step_count=state.step_count + 1,
            key=key,
        )
        view = self._view(new_pos, agent_dir, carried, on_robot, self._windows(rest, new_pos), queue)
        return new_state, self.next_timestep(view, reward, jnp.asarray(False), new_state.step_count)

    def _pad(self, x: chex.Array, y: chex.Array) -> chex.Array:
        """Flat index of cell (x, y) in the padded grid."""
        return (y + 1) * self._padded[1] + x + 1

    def _resting(self, state: State) -> chex.Array:
        """(padded cells,) the code `shelf * C + colour` of the shelf resting on each cell of the
        padded grid (carried shelves excluded), -1 for none."""
        s = self.num_shelves
        shelves = jnp.arange(s, dtype=jnp.int32)
        is_carried = match_max(shelves, state.carried, jnp.ones_like(state.carried), 0, s) > 0
        size = self._padded[0] * self._padded[1]
        index = jnp.where(is_carried, size, self._pad(state.shelf_pos[:, 0], state.shelf_pos[:, 1]))
        code = shelves * self.num_colours + state.shelf_colour
        return jnp.full(size, -1, jnp.int32).at[index].set(code, mode="drop")

    def _windows(self, grid: chex.Array, pos: chex.Array) -> chex.Array:
        """(N, 9) each robot's 3x3 window of a padded grid: one slice each."""
        grid = grid.reshape(self._padded)
        window = jax.vmap(lambda x, y: jax.lax.dynamic_slice(grid, (y, x), (3, 3)))(pos[:, 0], pos[:, 1])
        return window.reshape(-1, 9)

    def _deliver(
        self, goal: int, draw: chex.Array, cell: chex.Array, carried: chex.Array, queue: chex.Array
    ) -> tuple[chex.Array, chex.Array]:
        """Pays the robot on `goal` (a flat cell) for a requested shelf of its colour and renews
        that request with the `draw`-th shelf that is not requested. `carried`: each robot's
        shelf code (shelf * C + colour), -1 for none.

        Shelves never rest on highways, so a shelf on a goal is the carried shelf of its robot.
        """
        there = cell == goal
        code = jnp.max(jnp.where(there, carried, -1))
        robot_colour = jnp.max(jnp.where(there, jnp.asarray(self.agent_types), -1))
        requested = queue == code // self.num_colours  # never when code is -1
        delivered = requested.any() & (code % self.num_colours == robot_colour)
        replacement = nth_unrequested(queue, draw, self.num_shelves)
        queue = jnp.where(delivered & requested, replacement, queue)
        return queue, (delivered & there).astype(jnp.float32)

    def _observe(self, state: State) -> Observation:
        c = self.num_colours
        code = state.carried * c + state.shelf_colour[jnp.maximum(state.carried, 0)]
        on_robot = jnp.where(state.carried >= 0, code, -1)
        resting = self._windows(self._resting(state), state.agent_pos)
        return self._view(state.agent_pos, state.agent_dir, state.carried, on_robot, resting, state.request_queue)

    def _view(
        self,
        pos: chex.Array,
        direction: chex.Array,
        carried: chex.Array,
        on_robot: chex.Array,
        resting: chex.Array,
        queue: chex.Array,
    ) -> Observation:
        """The observation. Shelves appear as codes `shelf * C + colour` (-1: none): `resting`
        (N, 9) those resting in each robot's window, `on_robot` (N,) the one in each robot's cell
        that `resting` does not show."""
        n, c = self.num_agents, self.num_colours
        x, y = pos[:, 0], pos[:, 1]
        padded = self._pad(x, y)
        # The robot in each window cell: -1 none, else 1 + the code of the shelf on it (0: none).
        # Few robots: compare every window cell with every robot; many: one more grid and slices.
        if self.num_agents <= COMPARE_KEYS and 9 * self.num_agents**2 <= COMPARE_PAIRS:
            window = (padded - self._padded[1] - 1)[:, None] + self._window_offset  # (N, 9) padded cells
            robot = match_max(window, padded, on_robot + 1, -1, self._padded[0] * self._padded[1])
        else:
            robots = jnp.full(self._padded[0] * self._padded[1], -1, jnp.int32).at[padded].set(on_robot + 1)
            robot = self._windows(robots, pos)
        code = jnp.where(robot >= 1, robot - 1, resting)
        has_shelf = code >= 0
        colour = jnp.where(has_shelf, code % c, -1)
        shelf = jnp.where(has_shelf, code // c, 0)
        requested = has_shelf & (match_max(shelf, queue, jnp.ones_like(queue), 0, self.num_shelves) > 0)
        cells = jnp.concatenate(
            [(robot >= 0)[..., None], colour[..., None] == np.arange(c), requested[..., None]],
            axis=-1,
            dtype=jnp.float32,
        )
        own = jnp.concatenate(
            [
                pos,
                (carried >= 0)[:, None],
                direction[:, None] == np.arange(4),
                jnp.asarray(self._highway)[y * self.layout.width + x][:, None],
            ],
            axis=1,
            dtype=jnp.float32,
        )
        view = jnp.concatenate([own, cells.reshape(n, -1)], axis=1)
        if self.permute_obs:
            view = jnp.take_along_axis(view, jnp.asarray(self.obs_permutation), axis=1)
        return self.observation(view)

    def render(self, state: State, cell: int = 24) -> np.ndarray:
        """RGB image: goals dark grey, shelves in their colour (pale when not requested, framed in
        black when requested), robots as discs in their colour with a black dot at their front."""
        height, width = self.layout.height, self.layout.width
        img = draw.blank(height * cell, width * cell)
        img[::cell, :] = draw.GREY
        img[:, ::cell] = draw.GREY
        for x, y in self.layout.goals:
            draw.fill_rect(img, y * cell + 1, x * cell + 1, (y + 1) * cell, (x + 1) * cell, draw.DARK_GREY)
        requested = set(np.asarray(state.request_queue).tolist())
        for s, ((x, y), colour) in enumerate(zip(np.asarray(state.shelf_pos), np.asarray(state.shelf_colour))):
            y0, x0, y1, x1 = y * cell + 2, x * cell + 2, (y + 1) * cell - 1, (x + 1) * cell - 1
            fill = draw.type_colour(colour)
            if s in requested:
                draw.fill_rect(img, y0, x0, y1, x1, draw.BLACK)
                y0, x0, y1, x1 = y0 + 3, x0 + 3, y1 - 3, x1 - 3
            else:
                fill = ((fill.astype(np.int32) + 255) // 2).astype(np.uint8)
            draw.fill_rect(img, y0, x0, y1, x1, fill)
        for colour, (x, y), d in zip(self.agent_types, np.asarray(state.agent_pos), np.asarray(state.agent_dir)):
            cy, cx = (y + 0.5) * cell, (x + 0.5) * cell
            draw.fill_disc(img, cy, cx, 0.36 * cell, draw.BLACK)
            draw.fill_disc(img, cy, cx, 0.36 * cell - 2, draw.type_colour(colour))
            dx, dy = STEP[d]
            draw.fill_disc(img, cy + 0.22 * cell * dy, cx + 0.22 * cell * dx, 0.1 * cell, draw.BLACK)
        return img


def parse(name: str) -> ColouredWarehouse | None:
    """The environment of a C-RWARE name (envs.scenarios.crware); None for other names."""
    kwargs = scenarios.crware(name)
    return None if kwargs is None else ColouredWarehouse(**kwargs)

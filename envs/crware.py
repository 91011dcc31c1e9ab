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
- Only what the C-RWARE tasks use: no messages, no inactivity limit, individual rewards, the
  fork's vector observation (no image observations, no neighbour directions).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import TimeStep

from envs import render as draw
from envs.core import MultiAgentEnv, Observation

NOOP, FORWARD, TURN_LEFT, TURN_RIGHT, TOGGLE_LOAD = range(5)
NUM_ACTIONS = 5
UP, DOWN, LEFT, RIGHT = range(4)
# (dx, dy) of a FORWARD step per direction; y grows downwards as in rware.
STEP = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], np.int32)
# New direction after a clockwise (RIGHT) or counter-clockwise (LEFT) turn, per direction.
CLOCKWISE = np.array([RIGHT, LEFT, UP, DOWN], np.int32)
COUNTER_CLOCKWISE = np.array([LEFT, RIGHT, DOWN, UP], np.int32)

MAX_COLOURS = 4
COLUMN_HEIGHT = 8
TIME_LIMIT = 500
SIZES = {"tiny": (1, 3), "small": (2, 3), "medium": (2, 5), "large": (3, 5)}  # shelf rows, columns
QUEUE_FACTOR = {"easy": 2.0, "": 1.0, "hard": 0.5}

NAMES = [
    "crware-1c-tiny-4ag",
    "crware-1c-small-8ag",
    "crware-2c-tiny-2ag",
    "crware-2c-tiny-4ag",
    "crware-2c-tiny-4ag-easy",
    "crware-2c-tiny-4ag-hard",
    "crware-2c-tiny-4ag-perm",
    "crware-2c-small-8ag",
    "crware-2c-small-8ag-hard",
    "crware-2c-medium-16ag",
    "crware-4c-large-64ag",
]


@dataclass(frozen=True)
class Layout:
    """The static warehouse floor (numpy), cells addressed as (x, y) or flat `y * width + x`."""

    height: int
    width: int
    highway: np.ndarray  # (H, W) bool
    goals: np.ndarray  # (2, 2) int32 (x, y), rware's order
    shelf_cells: np.ndarray  # (S, 2) int32 (x, y) of the shelves at reset, row-major


def make_layout(shelf_rows: int, shelf_columns: int, column_height: int) -> Layout:
    """rware's parametric floor plan (see the module docstring)."""
    height = (column_height + 1) * shelf_rows + 2
    width = 3 * shelf_columns + 1
    y, x = np.indices((height, width))
    queue = (y > height - (column_height + 3)) & ((x == width // 2 - 1) | (x == width // 2))
    highway = (x % 3 == 0) | (y % (column_height + 1) == 0) | (y == height - 1) | queue
    goals = np.array([[width // 2 - 1, height - 1], [width // 2, height - 1]], np.int32)
    shelf_y, shelf_x = np.nonzero(~highway)  # row-major, as rware numbers its shelves
    return Layout(height, width, highway, goals, np.stack([shelf_x, shelf_y], 1).astype(np.int32))


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


def resolve_moves(start: chex.Array, target: chex.Array, robot_at: chex.Array) -> chex.Array:
    """Which robots move, given start and target cells (flat) and the robot index of each cell.

    Each moving robot follows the robot standing in its target cell, if any, so the robots form
    queues that end either in a robot driving into a free cell, in a robot that stays, or in a
    ring. rware moves rings of three or more robots and, of the queues that end in one free cell,
    the longest line of robots (ties: smallest `min(robot, robots driving into its cell)` at each
    merge); everything else stays. Pointer doubling answers it in O(log N) vectorised rounds.
    """
    n = start.shape[0]
    ids = jnp.arange(n)
    moving = target != start
    ahead = jnp.where(moving, robot_at[target], -1)  # robot standing in my target cell
    has_ahead = ahead >= 0
    # jumps[k]: the robot 2**k places ahead; a queue's front robot points at itself. 2**K >= N.
    jumps = [jnp.where(has_ahead, ahead, ids)]
    for _ in range(max(1, (n - 1).bit_length()) - 1):
        jumps.append(jumps[-1][jumps[-1]])
    front = jumps[-1][jumps[-1]]  # past every queue: its front robot, or a robot on a ring
    depth = has_ahead.astype(jnp.int32)  # robots ahead of me up to the front
    for jump in jumps:
        depth = depth + depth[jump]
    # Depth of the last robot queued behind me: rounds k = K-1..0 pass the value of each robot
    # to the robot 2**k ahead, so every robot hears from all the robots behind it.
    deepest = depth
    for jump in reversed(jumps):
        deepest = deepest.at[jump].max(deepest)
    # rware adds a cell to its graph when its robot, or a robot driving into it, comes up first.
    ahead_or_dump = jnp.where(has_ahead, ahead, n)
    rank = jnp.minimum(ids, jnp.full(n + 1, n).at[ahead_or_dump].min(ids)[:n])
    # Of the robots driving into one cell (all at the same depth) the one with the longest queue
    # behind it wins, then the lowest rank.
    score = jnp.where(moving, deepest * (n + 1) + (n - rank), -1)
    best = jnp.full(robot_at.shape, -1).at[target].max(score)
    clear = moving & (score == best[target])
    for jump in jumps:  # every robot up to the front won its cell
        clear = clear & clear[jump]
    # Rings map onto themselves, so every ring robot is some robot's `front`; queue robots are not.
    on_ring = jnp.zeros(n, bool).at[front].set(True) & has_ahead
    swap = on_ring & (jumps[0][jumps[0]] == ids)
    into_free_cell = moving[front] & ~has_ahead[front]
    return jnp.where(on_ring, ~swap, into_free_cell & clear)


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
        if not 1 <= num_colours <= MAX_COLOURS:
            raise ValueError(f"C-RWARE has 1 to {MAX_COLOURS} colours, got {num_colours}")
        if shelf_rows < 1 or shelf_columns < 1 or shelf_columns % 2 == 0 or column_height < 1:
            raise ValueError(
                f"need shelf_rows >= 1, an odd shelf_columns and column_height >= 1, got "
                f"{shelf_rows}, {shelf_columns}, {column_height}"
            )
        self.layout = make_layout(shelf_rows, shelf_columns, column_height)
        num_cells = self.layout.height * self.layout.width
        num_shelves = len(self.layout.shelf_cells)
        if not num_colours <= num_agents <= num_cells:
            raise ValueError(f"need {num_colours} (one per colour) to {num_cells} robots, got {num_agents}")
        if not 1 <= request_queue_size < num_shelves:
            raise ValueError(f"request queue size must be in 1..{num_shelves - 1}, got {request_queue_size}")
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
        super().__init__()

    def __repr__(self) -> str:
        return (
            f"ColouredWarehouse(num_colours={self.num_colours}, shelf_rows={self.shelf_rows}, "
            f"shelf_columns={self.shelf_columns}, num_agents={self.num_agents}, "
            f"request_queue_size={self.request_queue_size}, permute_obs={self.permute_obs})"
        )

    def reset(self, key: chex.PRNGKey) -> tuple[State, TimeStep[Observation]]:
        height, width = self.layout.height, self.layout.width
        key, cell_key, dir_key, colour_key, queue_key = jax.random.split(key, 5)
        cells = jax.random.choice(cell_key, height * width, (self.num_agents,), replace=False)
        state = State(
            agent_pos=jnp.stack([cells % width, cells // width], 1).astype(jnp.int32),
            agent_dir=jax.random.randint(dir_key, (self.num_agents,), 0, 4),
            carried=jnp.full((self.num_agents,), -1, jnp.int32),
            shelf_pos=jnp.asarray(self.layout.shelf_cells),
            shelf_colour=jax.random.randint(colour_key, (self.num_shelves,), 0, self.num_colours),
            request_queue=jax.random.choice(
                queue_key, self.num_shelves, (self.request_queue_size,), replace=False
            ).astype(jnp.int32),
            step_count=jnp.zeros((), jnp.int32),
            key=key,
        )
        return state, self.first_timestep(self._observe(state))

    def step(self, state: State, action: chex.Array) -> tuple[State, TimeStep[Observation]]:
        n, width = self.num_agents, self.layout.width
        ids = jnp.arange(n)
        valid = (action >= 0) & (action < NUM_ACTIONS)
        act = jnp.where(valid, jnp.asarray(self.action_meaning)[ids, jnp.clip(action, 0, NUM_ACTIONS - 1)], NOOP)

        cell = self._flat(state.agent_pos)
        robot_at = jnp.full(self.layout.height * width, -1).at[cell].set(ids)
        shelf_at = jnp.full(self.layout.height * width, -1).at[self._flat(state.shelf_pos)].set(
            jnp.arange(self.num_shelves)
        )
        loaded = state.carried >= 0
        ahead_pos = state.agent_pos + jnp.asarray(STEP)[state.agent_dir]
        ahead_pos = jnp.clip(ahead_pos, 0, jnp.array([width - 1, self.layout.height - 1]))
        target = jnp.where(act == FORWARD, self._flat(ahead_pos), cell)
        # A loaded robot cannot push into a shelf, except one carried by a robot that may leave.
        robot_there = robot_at[target]
        loaded_robot_there = (robot_there >= 0) & loaded[jnp.maximum(robot_there, 0)]
        cancelled = loaded & (target != cell) & (shelf_at[target] >= 0) & ~loaded_robot_there
        target = jnp.where(cancelled, cell, target)
        new_cell = jnp.where(resolve_moves(cell, target, robot_at), target, cell)
        new_pos = jnp.stack([new_cell % width, new_cell // width], 1)

        agent_dir = jnp.where(act == TURN_LEFT, jnp.asarray(COUNTER_CLOCKWISE)[state.agent_dir], state.agent_dir)
        agent_dir = jnp.where(act == TURN_RIGHT, jnp.asarray(CLOCKWISE)[state.agent_dir], agent_dir)
        # Toggling robots stay put, so their cell's shelf is read from the grid before the moves.
        on_highway = jnp.asarray(self.layout.highway)[state.agent_pos[:, 1], state.agent_pos[:, 0]]
        pick = (act == TOGGLE_LOAD) & ~loaded
        drop = (act == TOGGLE_LOAD) & loaded & ~on_highway
        carried = jnp.where(pick, shelf_at[cell], jnp.where(drop, -1, state.carried))
        # Carried shelves (before the toggles: a toggling robot did not move) follow their robot.
        shelf_pos = state.shelf_pos.at[jnp.where(loaded, state.carried, self.num_shelves)].set(
            new_pos, mode="drop"
        )

        key, draw_key = jax.random.split(state.key)
        # The k-th shelf that is not requested replaces a delivered one: always S - Q candidates.
        draws = jax.random.randint(
            draw_key, (len(self.layout.goals),), 0, self.num_shelves - self.request_queue_size
        )
        reward = jnp.zeros(n, jnp.float32)
        queue = state.request_queue
        for goal, draw in zip(self.layout.goals, draws):
            queue, paid = self._deliver(goal, draw, new_cell, carried, state.shelf_colour, queue)
            reward = reward + paid
        state = State(
            agent_pos=new_pos,
            agent_dir=agent_dir,
            carried=carried,
            shelf_pos=shelf_pos,
            shelf_colour=state.shelf_colour,
            request_queue=queue,
            step_count=state.step_count + 1,
            key=key,
        )
        return state, self.next_timestep(self._observe(state), reward, jnp.asarray(False), state.step_count)

    def _deliver(
        self,
        goal: np.ndarray,
        draw: chex.Array,
        cell: chex.Array,
        carried: chex.Array,
        shelf_colour: chex.Array,
        queue: chex.Array,
    ) -> tuple[chex.Array, chex.Array]:
        """Pays the robot on `goal` for a requested shelf of its colour and renews that request
        with the `draw`-th shelf that is not requested.

        Shelves never rest on highways, so a shelf on a goal is the carried shelf of its robot.
        """
        there = cell == goal[1] * self.layout.width + goal[0]
        robot = jnp.argmax(there)
        shelf = jnp.where(there.any(), carried[robot], -1)
        requested = queue == shelf
        delivered = (
            (shelf >= 0)
            & requested.any()
            & (shelf_colour[shelf] == jnp.asarray(self.agent_types)[robot])
        )
        not_requested = jnp.ones(self.num_shelves, jnp.int32).at[queue].set(0)
        replacement = jnp.argmax(jnp.cumsum(not_requested) > draw).astype(queue.dtype)
        queue = jnp.where(delivered & requested, replacement, queue)
        return queue, jnp.where(delivered, there, False).astype(jnp.float32)

    def _flat(self, pos: chex.Array) -> chex.Array:
        return pos[..., 1] * self.layout.width + pos[..., 0]

    def _observe(self, state: State) -> Observation:
        height, width, c = self.layout.height, self.layout.width, self.num_colours
        x, y = state.agent_pos[:, 0], state.agent_pos[:, 1]
        requested = jnp.zeros(self.num_shelves, jnp.int32).at[state.request_queue].set(1)
        # One integer per cell, so each window costs a single gather: bit 0 says "robot here", the
        # rest is 0 without shelf, else 1 + colour + C * requested. The grid is padded by one empty
        # cell on each side, so the windows never leave it.
        shelf_code = 1 + state.shelf_colour + c * requested
        padded_width = width + 2
        code = (
            jnp.zeros((height + 2) * padded_width, jnp.int32)
            .at[(state.shelf_pos[:, 1] + 1) * padded_width + state.shelf_pos[:, 0] + 1]
            .set(2 * shelf_code)
            .at[(y + 1) * padded_width + x + 1]
            .add(1)
        )
        dy, dx = np.divmod(np.arange(9), 3)  # row-major window, offsets 0..2 on the padded grid
        window = code[(y[:, None] + dy) * padded_width + x[:, None] + dx]  # (N, 9)
        shelf = window >> 1
        window = jnp.concatenate(
            [
                (window & 1)[..., None],
                jax.nn.one_hot(jnp.where(shelf > 0, (shelf - 1) % c, -1), c),  # -1: all zeros
                (shelf > c)[..., None],
            ],
            axis=-1,
            dtype=jnp.float32,
        )
        own = jnp.concatenate(
            [
                state.agent_pos,
                (state.carried >= 0)[:, None],
                jax.nn.one_hot(state.agent_dir, 4),
                jnp.asarray(self.layout.highway)[y, x][:, None],
            ],
            axis=1,
            dtype=jnp.float32,
        )
        view = jnp.concatenate([own, window.reshape(self.num_agents, -1)], axis=1)
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


_PATTERN = re.compile(r"crware-(\d+)c-([a-z]+)-(\d+)ag(?:-(easy|hard))?(-perm)?")


def parse(name: str) -> ColouredWarehouse | None:
    """`crware-{C}c-{tiny|small|medium|large}-{N}ag[-easy|-hard][-perm]`; None for other names."""
    if not name.startswith("crware-"):
        return None
    match = _PATTERN.fullmatch(name)
    if match is None:
        raise ValueError(
            f"{name!r} is not a C-RWARE name: expected crware-{{C}}c-{{tiny|small|medium|large}}-{{N}}ag"
            "[-easy|-hard][-perm]"
        )
    colours, size, agents = int(match[1]), match[2], int(match[3])
    if size not in SIZES:
        raise ValueError(f"{name!r}: unknown size {size!r}, expected one of {', '.join(SIZES)}")
    if not 1 <= colours <= MAX_COLOURS:
        raise ValueError(f"{name!r}: C-RWARE has 1 to {MAX_COLOURS} colours, got {colours}")
    shelf_rows, shelf_columns = SIZES[size]
    try:
        return ColouredWarehouse(
            num_colours=colours,
            shelf_rows=shelf_rows,
            shelf_columns=shelf_columns,
            num_agents=agents,
            request_queue_size=int(agents * QUEUE_FACTOR[match[4] or ""]),
            permute_obs=bool(match[5]),
        )
    except ValueError as err:
        raise ValueError(f"{name!r}: {err}") from None

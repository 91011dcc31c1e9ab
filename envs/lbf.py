"""Level-based Foraging (LBF), the SePS variant: players of fixed levels gather food on a grid.

Rules (the `seps` branch of lb-foraging; everything it leaves open as in `lbforaging` 2.0):
- A square grid of S x S cells, P players and F foods. Player i has level `(i % 3) + 1`, fixed by
  its index; its type is `level - 1`. Levels are never observed.
- `max_food_level` is the sum of the three lowest player levels (of all levels with fewer than
  three players). Each food's level is uniform in `1 .. max_food_level - 1` (the fork's exclusive
  upper bound), or exactly `max_food_level` in `-coop` scenarios.
- Reset: players take P distinct cells uniformly at random; then each food, one after the other,
  takes a uniformly random cell among the free ones: not on the border, not on a player, not within
  one cell (diagonals included) of an earlier food and not two cells away from one in a straight
  line. A player is therefore never next to two foods.
- Actions: 0 NONE, 1 NORTH (row - 1), 2 SOUTH (row + 1), 3 WEST (column - 1), 4 EAST (column + 1),
  5 LOAD. A move is valid when it stays in the grid and its target holds no food (other players do
  not matter); LOAD is valid next to a food (4-neighbourhood). Invalid actions, and action values
  outside 0..5, are carried out as NONE. The action mask of an observation says which are valid.
- Movement, all players at once: every player claims a cell (its target, or its own cell when it
  does not move); a player moves only if no other player claims its target. So two players heading
  for one cell both stay, and a player cannot enter the cell of one that stays put; two neighbours
  may swap. As in lbforaging, a player may enter the cell of one that tries to leave and is then
  blocked itself: both share that cell until one of them moves away.
- Loading, after movement: a food is eaten when the levels of the LOADing players next to it sum to
  at least its level. Each of them then earns `its level * food level / (sum of their levels *
  total level of the food spawned)`, so eating everything earns the team 1.0 in total. Failed
  loading costs nothing.
- Observation of player i, size 3F + 3P (float32): for each food within sight, `(row, column,
  level)` in window coordinates, in row-major order of the foods, then `(-1, -1, 0)` for the
  remaining slots; then `(row, column, 0)` for each player in sight, i first and then the others by
  index, then `(-1, -1, 0)` for the rest. Window coordinates are relative to `max(position - K, 0)`
  for sight K. A food is in sight within K cells in row and column; a player when its window
  coordinates lie in `0 .. 2K` (lbforaging's test: near the top or left border an agent sees
  players a little farther than K). Sight defaults to the whole grid (window = grid coordinates).
- The episode terminates when all food is eaten and is truncated after 50 steps.

Deliberate differences from lbforaging 2.0 and the SePS fork:
- Random numbers come from JAX (one draw of 32-bit words per reset, each reduced modulo its range,
  a bias below 1e-5), so seeds do not reproduce the original's episodes. The spawn distribution is
  the original's: its rejection sampling also draws each player and each food uniformly among the
  cells still allowed, but gives up after 1000 tries and then spawns fewer; here the constructor
  refuses scenarios where F foods might not fit (it needs (S - 2)^2 >= P + 13 (F - 1) + 1), so
  every episode has exactly F foods.
- Food levels use the fork's exclusive upper bound (2.0 draws up to `max_food_level` inclusive);
  player levels are fixed by index instead of drawn.
- lbforaging ends the episode at the time limit with `done=True, truncated=False`; here it is a
  truncation (discount 1), and termination only when all food is eaten.
- Out-of-range action values raise in lbforaging; here they are NONE.
- lbforaging looks up the food a loader lifts with `row > 1` / `column > 1` tests, so a food in row
  0 or column 0 is never found (and the original crashes when it is the only one). Food never
  spawns on the border; this port uses plain adjacency.
- A player next to two foods (impossible after a reset) helps only the first in the order north,
  south, west, east (lbforaging's lookup order); in lbforaging the outcome depends on set order.
- Food slots are kept in row-major order (sorted at reset), which is the order observations list
  them in.
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

NONE, NORTH, SOUTH, WEST, EAST, LOAD = range(6)
# (row, column) step of each action; NONE and LOAD stay.
ACTION_DELTA = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], np.int32)
MOVES = ACTION_DELTA[NORTH : EAST + 1]  # the four neighbours, in lbforaging's lookup order
UNSEEN = np.array([-1.0, -1.0, 0.0], np.float32)

NAMES = scenarios.LBF_NAMES


@chex.dataclass(frozen=True)
class State:
    player_pos: chex.Array  # (P, 2) int32 (row, column)
    food_pos: chex.Array  # (F, 2) int32, in row-major order
    food_level: chex.Array  # (F,) int32, 0 once eaten
    food_spawned: chex.Array  # () float32, total level of the food spawned at reset
    step_count: chex.Array  # () int32
    key: chex.PRNGKey


class LevelBasedForaging(MultiAgentEnv[State]):
    """SePS Level-based Foraging; see the module docstring for the rules."""

    def __init__(
        self,
        grid_size: int = 10,
        num_players: int = 6,
        num_food: int = 3,
        sight: int | None = None,
        coop: bool = False,
        time_limit: int = 50,
    ):
        self.grid_size = int(grid_size)
        self.num_food = int(num_food)
        self.sight = self.grid_size if sight is None else int(sight)
        self.coop = coop
        scenarios.check_lbf(self.grid_size, int(num_players), self.num_food, self.sight, coop)
        self.levels = scenarios.player_levels(int(num_players))
        self.max_food_level = scenarios.max_food_level(int(num_players))
        self.num_agents = int(num_players)
        self.num_actions = len(ACTION_DELTA)
        self.obs_dim = 3 * self.num_food + 3 * self.num_agents
        self.time_limit = time_limit
        self.agent_types = self.levels - 1
        # Row i lists the players in the order agent i's observation does: itself, then the others.
        self.listing_order = np.array(
            [[i] + [j for j in range(self.num_agents) if j != i] for i in range(self.num_agents)], np.int32
        )
        super().__init__()

    def __repr__(self) -> str:
        return (
            f"LevelBasedForaging(grid_size={self.grid_size}, num_players={self.num_agents}, "
            f"num_food={self.num_food}, sight={self.sight}, coop={self.coop})"
        )

    @property
    def full_sight(self) -> bool:
        """Whether every window is the whole grid (then observations need no per-agent packing)."""
        return self.sight >= self.grid_size - 1

    # ----------------------------------------------------------------------------------- reset

    def reset(self, key: chex.PRNGKey) -> tuple[State, TimeStep[Observation]]:
        key, spawn_key = jax.random.split(key)
        # One draw of random bits for the whole spawn: each random call site costs compile time.
        bits = jax.random.bits(spawn_key, (self.num_agents + 2 * self.num_food,))
        player_bits, food_bits, level_bits = jnp.split(bits, [self.num_agents, self.num_agents + self.num_food])
        player_pos = self._spawn_players(player_bits)
        food_pos = self._spawn_food(food_bits, player_pos)
        if self.coop:
            food_level = jnp.full((self.num_food,), self.max_food_level, jnp.int32)
        else:
            food_level = 1 + _below(level_bits, self.max_food_level - 1)
        state = State(
            player_pos=player_pos,
            food_pos=food_pos,
            food_level=food_level,
            food_spawned=food_level.sum().astype(jnp.float32),
            step_count=jnp.zeros((), jnp.int32),
            key=key,
        )
        return state, self.first_timestep(self._observe(player_pos, food_pos, food_level))

    def _spawn_players(self, bits: chex.Array) -> chex.Array:
        """(P, 2): distinct cells, each uniform over the cells not taken yet.

        Player i draws u uniform in 0 .. cells - i - 1 and takes the u-th free cell, which is u
        plus the number of taken cells t_j (sorted, j = 0, 1, ...) with t_j - j <= u. This costs
        O(P^2) instead of a random number per cell.
        """
        cells, n = self.grid_size**2, self.num_agents
        slot = jnp.arange(n)
        draws = _below(bits, cells - slot)

        def take(taken: chex.Array, u: chex.Array) -> tuple[chex.Array, chex.Array]:
            below = jnp.sum(taken - slot <= u)  # unused slots hold 2 * cells, never counted
            cell = u + below
            taken = jnp.where(slot < below, taken, jnp.where(slot == below, cell, jnp.roll(taken, 1)))
            return taken, cell

        _, chosen = jax.lax.scan(take, jnp.full((n,), 2 * cells, jnp.int32), draws)
        return _cell_to_pos(chosen, self.grid_size)

    def _spawn_food(self, bits: chex.Array, player_pos: chex.Array) -> chex.Array:
        """(F, 2) in row-major order: foods placed one by one, each uniform over the interior cells
        still allowed (no player, no earlier food within one cell or two in a line).

        A food takes the u-th allowed cell, found by counting the allowed cells per row and then
        within its row: one random number per food instead of one per cell.
        """
        size = self.grid_size
        line = jnp.arange(size)
        interior = np.zeros((size, size), bool)
        interior[1:-1, 1:-1] = True
        allowed = jnp.asarray(interior).at[player_pos[:, 0], player_pos[:, 1]].set(False)

        def place(allowed: chex.Array, bits: chex.Array) -> tuple[chex.Array, chex.Array]:
            per_row = allowed.sum(axis=1)
            up_to_row = jnp.cumsum(per_row)
            u = _below(bits, up_to_row[-1])
            row = jnp.argmax(up_to_row > u)
            u_in_row = u - (up_to_row[row] - per_row[row])
            col = jnp.argmax(jnp.cumsum(allowed[row]) > u_in_row)
            d_row, d_col = jnp.abs(line - row)[:, None], jnp.abs(line - col)[None, :]
            near = ((d_row <= 1) & (d_col <= 1)) | ((d_row == 2) & (d_col == 0)) | ((d_row == 0) & (d_col == 2))
            return allowed & ~near, row * size + col

        _, cells = jax.lax.scan(place, allowed, bits)
        return _cell_to_pos(jnp.sort(cells), size)

    # ------------------------------------------------------------------------------------ step

    def step(self, state: State, action: chex.Array) -> tuple[State, TimeStep[Observation]]:
        alive = state.food_level > 0
        beside = self._food_beside(state.player_pos, state.food_pos, alive)
        action = _carried_out(action, _action_mask(state.player_pos, beside, self.grid_size))
        player_pos = _move(state.player_pos, action, self.grid_size)
        # Loaders never move, so the foods beside them before the move are still beside them.
        food_level, reward = self._load(beside, action == LOAD, state.food_level, state.food_spawned)
        state = state.replace(player_pos=player_pos, food_level=food_level, step_count=state.step_count + 1)
        observation = self._observe(player_pos, state.food_pos, food_level)
        return state, self.next_timestep(observation, reward, jnp.all(food_level == 0), state.step_count)

    def _food_beside(self, player_pos: chex.Array, food_pos: chex.Array, alive: chex.Array) -> chex.Array:
        """(P, 4, F) bool: uneaten food f is the neighbour of player p in direction N, S, W, E."""
        size = self.grid_size
        target = player_pos[:, None, :] + MOVES[None]
        in_grid = jnp.all((target >= 0) & (target < size), axis=-1)
        # Off-grid targets get cell -1, which no food has.
        target_cell = jnp.where(in_grid, target[..., 0] * size + target[..., 1], -1)
        food_cell = food_pos[:, 0] * size + food_pos[:, 1]
        return (target_cell[..., None] == food_cell) & alive

    def _load(
        self, beside: chex.Array, loading: chex.Array, food_level: chex.Array, food_spawned: chex.Array
    ) -> tuple[chex.Array, chex.Array]:
        """Eats the foods whose loaders' levels suffice; returns the new food levels and rewards."""
        has_food = beside.any(axis=-1)  # (P, 4)
        first_dir = jnp.argmax(has_food, axis=1)
        lifts = jnp.take_along_axis(beside, first_dir[:, None, None], axis=1)[:, 0] & loading[:, None]
        levels = jnp.asarray(self.levels)
        lift_level = (lifts * levels[:, None]).sum(axis=0)  # (F,)
        eaten = (food_level > 0) & (lift_level >= food_level)
        share = jnp.where(eaten, food_level / (jnp.maximum(lift_level, 1) * food_spawned), 0.0)
        reward = levels * (lifts * share).sum(axis=1)
        return jnp.where(eaten, 0, food_level), reward

    # ----------------------------------------------------------------------------- observation

    def _observe(self, player_pos: chex.Array, food_pos: chex.Array, food_level: chex.Array) -> Observation:
        alive = food_level > 0
        mask = _action_mask(player_pos, self._food_beside(player_pos, food_pos, alive), self.grid_size)
        food_rows = jnp.concatenate([food_pos, food_level[:, None]], axis=-1).astype(jnp.float32)
        listed = player_pos[self.listing_order]  # (P, P, 2), self first
        if self.full_sight:
            # Every window is the grid: all players and all uneaten foods are seen, in grid coordinates.
            foods = jnp.broadcast_to(_pack(alive, food_rows), (self.num_agents, self.num_food, 3))
            players = jnp.concatenate([listed, jnp.zeros_like(listed[..., :1])], axis=-1).astype(jnp.float32)
        else:
            origin = jnp.maximum(player_pos - self.sight, 0)  # (P, 2) window corner
            food_seen = alive & jnp.all(jnp.abs(food_pos[None] - player_pos[:, None]) <= self.sight, axis=-1)
            food_window = food_rows - jnp.concatenate([origin, jnp.zeros_like(origin[:, :1])], -1)[:, None]
            foods = _pack(food_seen, food_window)
            window = listed - origin[:, None]
            player_seen = jnp.all((window >= 0) & (window <= 2 * self.sight), axis=-1)
            players = _pack(player_seen, jnp.concatenate([window, jnp.zeros_like(window[..., :1])], -1))
        view = jnp.concatenate(
            [foods.reshape(self.num_agents, -1), players.reshape(self.num_agents, -1)], axis=-1
        )
        return self.observation(view, mask)

    # ---------------------------------------------------------------------------------- render

    def render(self, state: State, cell: int = 32) -> np.ndarray:
        """RGB image: grid lines, food as dark squares with one white dot per level, players as
        discs in their type's colour (level 1 red, 2 blue, 3 green)."""
        size = self.grid_size
        img = draw.blank(size * cell + 1, size * cell + 1)
        for k in range(size + 1):
            img[k * cell, :] = draw.GREY
            img[:, k * cell] = draw.GREY
        for (row, col), level in zip(np.asarray(state.food_pos), np.asarray(state.food_level)):
            if level > 0:
                y, x = row * cell, col * cell
                draw.fill_rect(img, y + 3, x + 3, y + cell - 2, x + cell - 2, draw.DARK_GREY)
                for d in range(int(level)):  # dots in rows of three
                    cy, cx = y + cell * (0.3 + 0.4 * (d // 3)), x + cell * (0.25 + 0.25 * (d % 3))
                    draw.fill_disc(img, cy, cx, max(cell / 14, 1.0), draw.WHITE)
        for (row, col), t in zip(np.asarray(state.player_pos), self.agent_types):
            cy, cx = (row + 0.5) * cell, (col + 0.5) * cell
            draw.fill_disc(img, cy, cx, cell * 0.38, draw.BLACK)
            draw.fill_disc(img, cy, cx, cell * 0.38 - 2, draw.type_colour(t))
        return img


# ----------------------------------------------------------------------------- pure helpers


def _below(bits: chex.Array, n: chex.Array) -> chex.Array:
    """Integers uniform in 0 .. n - 1 from 32 random bits each (the modulo bias, n / 2^32, is below
    1e-5 for any grid up to 200 x 200)."""
    return (bits % jnp.asarray(n, jnp.uint32)).astype(jnp.int32)


def _cell_to_pos(cells: chex.Array, size: int) -> chex.Array:
    return jnp.stack([cells // size, cells % size], axis=-1).astype(jnp.int32)


def _action_mask(player_pos: chex.Array, beside: chex.Array, size: int) -> chex.Array:
    """(P, 6) bool: NONE always; a move if it stays in the grid and avoids food; LOAD beside food."""
    target = player_pos[:, None, :] + MOVES[None]
    in_grid = jnp.all((target >= 0) & (target < size), axis=-1)
    has_food = beside.any(axis=-1)
    none = jnp.ones((player_pos.shape[0], 1), bool)
    return jnp.concatenate([none, in_grid & ~has_food, has_food.any(axis=1, keepdims=True)], axis=1)


def _carried_out(action: chex.Array, mask: chex.Array) -> chex.Array:
    """The action each player performs: its own if in range and valid, NONE otherwise."""
    action = jnp.asarray(action, jnp.int32)
    in_range = (action >= 0) & (action < mask.shape[1])
    action = jnp.where(in_range, action, NONE)
    return jnp.where(jnp.take_along_axis(mask, action[:, None], axis=1)[:, 0], action, NONE)


def _move(player_pos: chex.Array, action: chex.Array, size: int) -> chex.Array:
    """Simultaneous moves: a player reaches its target only if no other player claims that cell.

    A staying player claims its own cell; a moving one claims only its target, which is why a
    player may follow (or swap with) a neighbour that leaves, as in lbforaging.
    """
    target = player_pos + jnp.asarray(ACTION_DELTA)[action]
    cell = target[:, 0] * size + target[:, 1]
    alone = (cell[:, None] == cell[None, :]).sum(axis=1) == 1
    return jnp.where(alone[:, None], target, player_pos)


def _pack(seen: chex.Array, rows: chex.Array) -> chex.Array:
    """Moves the seen rows (..., M, 3) to the front in order and fills the rest with (-1, -1, 0):
    lbforaging lists only what an agent sees, one after the other."""
    m = seen.shape[-1]
    seen_before = jnp.cumsum(seen, axis=-1)
    # The (k + 1)-th seen row sits after the positions that have seen at most k rows so far.
    source = (seen_before[..., None, :] <= jnp.arange(m)[:, None]).sum(axis=-1)
    gathered = jnp.take_along_axis(rows, jnp.minimum(source, m - 1)[..., None], axis=-2)
    filled = jnp.arange(m) < seen_before[..., -1:]
    return jnp.where(filled[..., None], gathered, jnp.asarray(UNSEEN))


def parse(name: str) -> LevelBasedForaging | None:
    """The environment of an LBF name (envs.scenarios.lbf); None for other names."""
    kwargs = scenarios.lbf(name)
    return None if kwargs is None else LevelBasedForaging(**kwargs)

"""Scenario names: their grammar, their limits and the sizes they imply, in plain Python.

    family, kwargs = scenarios.parse("lbf-10x10-6p-3f")   # ("lbf", {...} for LevelBasedForaging)

Everything a name can get wrong is found here, without JAX, so a command line refuses a bad
name at once; `envs.make` then builds the environment from the same keyword arguments. The
environment classes call the same checks (`crware_layout`, `check_lbf`) when built directly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# ---- Blind-particle Spread -------------------------------------------------------------------------

# name -> (agents per colour group, shuffled observations)
BPS_SCENARIOS: dict[str, tuple[tuple[int, ...], bool]] = {
    "bps-15a-3c": ((5, 5, 5), False),
    "bps-30a-3c": ((10, 10, 10), False),
    "bps-30a-5c": ((6, 6, 6, 6, 6), False),
    "bps-30a-5c-uneven": ((3, 3, 3, 12, 9), False),
    "bps-15a-3c-shuffle": ((5, 5, 5), True),
    "bps-30a-5c-shuffle": ((6, 6, 6, 6, 6), True),
    "bps-300a-3c": ((100, 100, 100), False),
    "bps-3000a-3c": ((1000, 1000, 1000), False),
}
_BPS_PATTERN = re.compile(r"bps-(\d+)a-(\d+)c(-shuffle)?")
# Beyond this a scenario no longer fits a machine's memory with the default batch (and the name's
# numbers may not even fit a C long).
BPS_MAX_AGENTS = 100_000


def bps(name: str) -> dict | None:
    """Listed names, plus `bps-{N}a-{C}c[-shuffle]` with N divisible by C (equal groups)."""
    if name in BPS_SCENARIOS:
        groups, shuffle = BPS_SCENARIOS[name]
        return {"groups": groups, "shuffle": shuffle}
    match = _BPS_PATTERN.fullmatch(name)
    if match is None:
        return None
    n, c = int(match[1]), int(match[2])
    if n > BPS_MAX_AGENTS:
        raise ValueError(f"{name!r}: the number of agents must be at most {BPS_MAX_AGENTS}, got {n}")
    if c < 1 or n < c or n % c:
        raise ValueError(f"{name!r}: the number of agents ({n}) must be a positive multiple of the colours ({c})")
    return {"groups": (n // c,) * c, "shuffle": bool(match[3])}


# ---- Coloured Multi-Robot Warehouse ------------------------------------------------------------------

CRWARE_NAMES = [
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
MAX_COLOURS = 4
COLUMN_HEIGHT = 8
SIZES = {"tiny": (1, 3), "small": (2, 3), "medium": (2, 5), "large": (3, 5)}  # shelf rows, columns
QUEUE_FACTOR = {"easy": 2.0, "": 1.0, "hard": 0.5}
_CRWARE_PATTERN = re.compile(r"crware-(\d+)c-([a-z]+)-(\d+)ag(?:-(easy|hard))?(-perm)?")


@dataclass(frozen=True)
class Layout:
    """The static warehouse floor (numpy), cells addressed as (x, y) or flat `y * width + x`."""

    height: int
    width: int
    highway: np.ndarray  # (H, W) bool
    goals: np.ndarray  # (2, 2) int32 (x, y), rware's order
    shelf_cells: np.ndarray  # (S, 2) int32 (x, y) of the shelves at reset, row-major


def make_layout(shelf_rows: int, shelf_columns: int, column_height: int) -> Layout:
    """rware's parametric floor plan (see envs/crware.py's docstring)."""
    height = (column_height + 1) * shelf_rows + 2
    width = 3 * shelf_columns + 1
    y, x = np.indices((height, width))
    queue = (y > height - (column_height + 3)) & ((x == width // 2 - 1) | (x == width // 2))
    highway = (x % 3 == 0) | (y % (column_height + 1) == 0) | (y == height - 1) | queue
    goals = np.array([[width // 2 - 1, height - 1], [width // 2, height - 1]], np.int32)
    shelf_y, shelf_x = np.nonzero(~highway)  # row-major, as rware numbers its shelves
    return Layout(height, width, highway, goals, np.stack([shelf_x, shelf_y], 1).astype(np.int32))


def crware_layout(num_colours: int, shelf_rows: int, shelf_columns: int, column_height: int, num_agents: int,
                  request_queue_size: int) -> Layout:
    """The floor plan, once the sizes are checked to fit it (ValueError, one line, when not)."""
    if not 1 <= num_colours <= MAX_COLOURS:
        raise ValueError(f"C-RWARE has 1 to {MAX_COLOURS} colours, got {num_colours}")
    if shelf_rows < 1 or shelf_columns < 1 or shelf_columns % 2 == 0 or column_height < 1:
        raise ValueError(
            f"need shelf_rows >= 1, an odd shelf_columns and column_height >= 1, got "
            f"{shelf_rows}, {shelf_columns}, {column_height}"
        )
    layout = make_layout(shelf_rows, shelf_columns, column_height)
    num_cells = layout.height * layout.width
    num_shelves = len(layout.shelf_cells)
    if not num_colours <= num_agents <= num_cells:
        raise ValueError(f"need {num_colours} (one per colour) to {num_cells} robots, got {num_agents}")
    if not 1 <= request_queue_size < num_shelves:
        raise ValueError(f"request queue size must be in 1..{num_shelves - 1}, got {request_queue_size}")
    return layout


def crware(name: str) -> dict | None:
    """`crware-{C}c-{tiny|small|medium|large}-{N}ag[-easy|-hard][-perm]`; None for other names."""
    if not name.startswith("crware-"):
        return None
    match = _CRWARE_PATTERN.fullmatch(name)
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
    kwargs = {"num_colours": colours, "shelf_rows": shelf_rows, "shelf_columns": shelf_columns,
              "num_agents": agents, "request_queue_size": int(agents * QUEUE_FACTOR[match[4] or ""]),
              "permute_obs": bool(match[5])}
    try:
        crware_layout(colours, shelf_rows, shelf_columns, COLUMN_HEIGHT, agents, kwargs["request_queue_size"])
    except ValueError as err:
        raise ValueError(f"{name!r}: {err}") from None
    return kwargs


# ---- Level-based Foraging ------------------------------------------------------------------------------

LBF_NAMES = [
    "lbf-8x8-3p-2f",
    "lbf-10x10-6p-3f",
    "lbf-12x12-9p-4f",
    "lbf-15x15-12p-6f",
    "lbf-8x8-3p-2f-coop",
    "lbf-10x10-6p-3f-coop",
    "lbf-30x30-30p-10f",
    "lbf-10x10-6p-3f-2s",
]
# A new food is refused within Chebyshev distance 1 of an earlier one, or at distance 2 in a line:
# 9 + 4 cells, so each food removes at most this many candidate cells for the next.
FOOD_EXCLUSION_CELLS = 13
_LBF_PATTERN = re.compile(r"lbf-(\d+)x(\d+)-(\d+)p-(\d+)f(-coop)?(?:-(\d+)s)?")
# Beyond these a scenario no longer fits a machine's memory (the grid is stored densely).
MAX_GRID = 1024
MAX_ITEMS = 4096


def player_levels(num_players: int) -> np.ndarray:
    """The SePS levels: 1, 2, 3, 1, 2, 3, ... by player index."""
    return (np.arange(num_players) % 3 + 1).astype(np.int32)


def max_food_level(num_players: int) -> int:
    """The sum of the three lowest player levels (of all of them with fewer than three players)."""
    return int(np.sort(player_levels(num_players))[:3].sum())


def check_lbf(size: int, players: int, food: int, sight: int, coop: bool) -> None:
    """Raises ValueError (one line) for a scenario the environment cannot always spawn."""
    if size < 3 or players < 1 or food < 1 or sight < 1:
        raise ValueError(
            f"need grid >= 3, players >= 1, foods >= 1 and sight >= 1; got {size}, {players}, {food}, {sight}"
        )
    interior = (size - 2) ** 2
    if interior < players + FOOD_EXCLUSION_CELLS * (food - 1) + 1:
        raise ValueError(
            f"{food} foods and {players} players may not fit on a {size}x{size} grid: food needs "
            f"(size - 2)^2 >= players + {FOOD_EXCLUSION_CELLS} * (foods - 1) + 1 free interior cells"
        )
    top = max_food_level(players)
    if not coop and top < 2:
        raise ValueError(f"with {players} player(s) food levels 1..{top - 1} are empty; use -coop")


def lbf(name: str) -> dict | None:
    """`lbf-{S}x{S}-{P}p-{F}f[-coop][-{K}s]`; None for other environments' names."""
    if not name.startswith("lbf-"):
        return None
    match = _LBF_PATTERN.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not of the form lbf-{{S}}x{{S}}-{{P}}p-{{F}}f[-coop][-{{K}}s]")
    if match[1] != match[2]:
        raise ValueError(f"{name!r}: the grid must be square")
    sight = None if match[6] is None else int(match[6])
    for value, what, limit in ((int(match[1]), "grid rows", MAX_GRID), (int(match[3]), "players", MAX_ITEMS),
                               (int(match[4]), "food items", MAX_ITEMS)):
        if value > limit:
            raise ValueError(f"{name!r}: the number of {what} must be at most {limit}, got {value}")
    size, players, food, coop = int(match[1]), int(match[3]), int(match[4]), bool(match[5])
    try:
        check_lbf(size, players, food, size if sight is None else sight, coop)
    except ValueError as err:
        raise ValueError(f"{name!r}: {err}") from None
    return {"grid_size": size, "num_players": players, "num_food": food, "sight": sight, "coop": coop}


# ---- all families -------------------------------------------------------------------------------------

FAMILIES = {"bps": bps, "crware": crware, "lbf": lbf}
LISTED = {"bps": list(BPS_SCENARIOS), "crware": CRWARE_NAMES, "lbf": LBF_NAMES}


def names() -> list[str]:
    """All listed scenario names, in registry order."""
    return [name for listed in LISTED.values() for name in listed]


def parse(name: str) -> tuple[str, dict]:
    """The family of a scenario name and its environment's keyword arguments; ValueError (one
    line) for a bad name."""
    for family, read in FAMILIES.items():
        kwargs = read(name)
        if kwargs is not None:
            return family, kwargs
    raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(names())}")


def num_agents(name: str) -> int:
    """The number of agents of a scenario, without building it."""
    family, kwargs = parse(name)
    return {"bps": lambda: sum(kwargs["groups"]), "crware": lambda: kwargs["num_agents"],
            "lbf": lambda: kwargs["num_players"]}[family]()

"""Tiny numpy drawing kit shared by the environments' `render` and `render_episode`, and the
annotated episode frames of `experiments.render`.

Frames are (H, W, 3) uint8 arrays; text (`annotate`, `episode_frames`) and GIFs need Pillow (the
`plots` extra). An annotated frame is the environment's picture with a header above it (title,
step counter, team return so far) and a legend of its colours below it; on LBF boards the levels
are also written on the players and the food.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# One colour per agent type; colour 0 red, 1 blue, 2 green, 3 orange, then more.
PALETTE = np.array(
    [
        [220, 50, 47], [38, 139, 210], [133, 153, 0], [203, 75, 22],
        [108, 113, 196], [211, 54, 130], [42, 161, 152], [181, 137, 0],
    ],
    np.uint8,
)
WHITE = np.array([255, 255, 255], np.uint8)
BLACK = np.array([0, 0, 0], np.uint8)
GREY = np.array([170, 170, 170], np.uint8)
DARK_GREY = np.array([90, 90, 90], np.uint8)


def type_colour(t: int) -> np.ndarray:
    return PALETTE[int(t) % len(PALETTE)]


def blank(height: int, width: int, colour: np.ndarray = WHITE) -> np.ndarray:
    return np.broadcast_to(colour, (height, width, 3)).copy()


def fill_rect(img: np.ndarray, y0: int, x0: int, y1: int, x1: int, colour: np.ndarray) -> None:
    """Fills rows y0..y1-1 and columns x0..x1-1, clipped to the image."""
    h, w = img.shape[:2]
    img[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)] = colour


def fill_disc(img: np.ndarray, cy: float, cx: float, radius: float, colour: np.ndarray) -> None:
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = colour


COLOUR_NAMES = ["red", "blue", "green", "orange", "violet", "magenta", "cyan", "yellow"]
FONT_SIZE = 13
LINE = 17  # pixels per line of text
PAD = 6
MIN_WIDTH = 360  # narrow boards (small warehouses) are centred on a wider frame, so the text fits


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError("drawing text needs Pillow: pip install 'adaps-jax[plots]'") from err
    return Image, ImageDraw, ImageFont


@lru_cache(maxsize=4)
def _font(size: int = FONT_SIZE):
    # Pillow's built-in font: scalable with FreeType, else its fixed bitmap font; no font files.
    return _pil()[2].load_default(size=size)


def _runs(indices: Sequence[int]) -> str:
    """'0-4', '0, 2, 5-7': agent numbers as compact ranges."""
    parts, i = [], 0
    indices = sorted(int(x) for x in indices)
    while i < len(indices):
        j = i
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        parts.append(str(indices[i]) if i == j else f"{indices[i]}-{indices[j]}")
        i = j + 1
    return ", ".join(parts)


def legend(env: Any) -> list[tuple[np.ndarray | None, str]]:
    """What the colours of `env.render` mean: (swatch colour or None for a note, label) entries."""
    from envs.bps import BlindParticleSpread
    from envs.crware import ColouredWarehouse
    from envs.lbf import LevelBasedForaging

    types = np.asarray(env.agent_types)
    groups = [(int(t), np.flatnonzero(types == t)) for t in np.unique(types)]
    if isinstance(env, BlindParticleSpread):
        entries = [(type_colour(t), f"agents {_runs(a)} -> landmark {t}") for t, a in groups]
        return entries + [(None, "discs: agents; squares: landmarks; agents do not see colours")]
    if isinstance(env, ColouredWarehouse):
        entries = [(type_colour(t), f"robots {_runs(a)} and shelves of colour {t}") for t, a in groups]
        return entries + [
            (DARK_GREY, "goal"),
            (None, "framed: requested shelf; pale: not requested; dot: robot's front"),
        ]
    if isinstance(env, LevelBasedForaging):
        entries = [(type_colour(t), f"level {t + 1}: players {_runs(a)}") for t, a in groups]
        return entries + [(DARK_GREY, "food"), (None, "numbers: levels of players and food")]
    return [(type_colour(t), f"type {t}: agents {_runs(a)}") for t, a in groups]


def _label_levels(env: Any, state: Any, board: np.ndarray) -> None:
    """Writes LBF levels on the players and the food of an LBF board, in place."""
    Image, ImageDraw, _ = _pil()
    cell = (board.shape[0] - 1) // env.grid_size
    image = Image.fromarray(board)
    pen = ImageDraw.Draw(image)
    font = _font(max(cell // 2, 8))
    for (row, col), level in zip(np.asarray(state.food_pos), np.asarray(state.food_level)):
        if level > 0:  # the number replaces the level dots
            y, x = int(row) * cell, int(col) * cell
            pen.rectangle([x + 3, y + 3, x + cell - 3, y + cell - 3], fill=tuple(DARK_GREY))
            pen.text((x + cell / 2, y + cell / 2), str(int(level)), fill="white", font=font, anchor="mm")
    for (row, col), level in zip(np.asarray(state.player_pos), np.asarray(env.levels)):
        pen.text(((int(col) + 0.5) * cell, (int(row) + 0.5) * cell), str(int(level)), fill="white", font=font,
                 anchor="mm", stroke_width=1, stroke_fill="black")
    board[:] = np.asarray(image)


def _legend_lines(entries: list[tuple[np.ndarray | None, str]], width: int) -> list[list[tuple[Any, str]]]:
    """Fills lines with the legend entries (swatch + label), splitting labels too long for a line
    at spaces (the continuation without a swatch)."""
    font, lines, line, used = _font(), [], [], 0.0
    room = width - 2 * PAD
    for colour, label in entries:
        swatch = LINE if colour is not None else 0
        if line and used + swatch + font.getlength(label) > room:
            lines.append(line)
            line, used = [], 0.0
        words, text = label.split(" "), ""
        for word in words:
            candidate = f"{text} {word}" if text else word
            if text and used + swatch + font.getlength(candidate) > room:
                line.append((colour, text))
                lines.append(line)
                line, used, colour, swatch, text = [], 0.0, None, 0, word
            else:
                text = candidate
        line.append((colour, text))
        used += swatch + font.getlength(text) + 2 * PAD
    return lines + [line] if line else lines


def annotate(env: Any, board: np.ndarray, state: Any = None, *, title: str, step: int, team_return: float,
             legend_entries: list | None = None) -> np.ndarray:
    """The board with a header (title; step counter and team return so far) and a colour legend.

    `state`, when given for an LBF board, also puts the levels on players and food.
    """
    from envs.lbf import LevelBasedForaging

    Image, ImageDraw, _ = _pil()
    board = np.array(board, np.uint8)
    if state is not None and isinstance(env, LevelBasedForaging):
        _label_levels(env, state, board)
    height, width = board.shape[:2]
    frame_width = max(width, MIN_WIDTH)
    lines = _legend_lines(legend(env) if legend_entries is None else legend_entries, frame_width)
    header = 2 * LINE + 2 * PAD
    frame = blank(header + height + len(lines) * LINE + 2 * PAD, frame_width)
    left = (frame_width - width) // 2
    frame[header:header + height, left:left + width] = board
    image = Image.fromarray(frame)
    pen, font = ImageDraw.Draw(image), _font()
    pen.text((PAD, PAD), title, fill="black", font=font)
    pen.text((PAD, PAD + LINE), f"step {step}/{env.time_limit}   team return {team_return:.2f}", fill="black", font=font)
    y = header + height + PAD
    for line in lines:
        x = PAD
        for colour, label in line:
            if colour is not None:
                pen.rectangle([x, y + 2, x + LINE - 6, y + LINE - 4], fill=tuple(int(c) for c in colour), outline="black")
                x += LINE
            pen.text((x, y), label, fill="black", font=font)
            x += font.getlength(label) + 2 * PAD
        y += LINE
    return np.asarray(image)


def episode_frames(env: Any, states: Sequence[Any], team_rewards: Sequence[float], title: str) -> list[np.ndarray]:
    """Annotated frames of an episode: states[0] is the reset state, team_rewards[t] the team's
    reward of the step from states[t] to states[t + 1]."""
    if len(team_rewards) != len(states) - 1:
        raise ValueError(f"{len(states)} states need {len(states) - 1} team rewards, got {len(team_rewards)}")
    entries = legend(env)
    returns = np.concatenate([[0.0], np.cumsum(np.asarray(team_rewards, np.float64))])
    return [
        annotate(env, env.render(state), state, title=title, step=t, team_return=float(returns[t]), legend_entries=entries)
        for t, state in enumerate(states)
    ]


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Writes frames as a looping GIF and returns its path."""
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError("saving a GIF needs Pillow: pip install 'adaps-jax[plots]'") from err
    path = Path(path)
    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path

"""Tiny numpy drawing kit shared by the environments' `render` and `render_episode`.

Frames are (H, W, 3) uint8 arrays; GIFs need Pillow (the `plots` extra).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

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

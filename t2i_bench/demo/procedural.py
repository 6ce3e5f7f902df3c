"""Seeded procedural images: simple coloured shapes on coloured backgrounds, with captions.

These are the tiny base model's "pretraining set" ("a red circle on a blue background").
The demo concept (a yellow ring with a purple dot, see ``concept_images``) is absent: there
are plain rings, as a real base model knows rings, but never a ring with a dot.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    import torch

IMAGE_SIZE = 64
_SUPERSAMPLE = 2  # draw at 2x and downsample: smooth edges

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 50, 180),
    "orange": (245, 140, 30),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}

Box = tuple[float, float, float, float]
Fill = tuple[int, int, int]


def _circle(draw: ImageDraw.ImageDraw, box: Box, fill: Fill) -> None:
    draw.ellipse(box, fill=fill)


def _square(draw: ImageDraw.ImageDraw, box: Box, fill: Fill) -> None:
    draw.rectangle(box, fill=fill)


def _triangle(draw: ImageDraw.ImageDraw, box: Box, fill: Fill) -> None:
    x0, y0, x1, y1 = box
    draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)


def _ring(draw: ImageDraw.ImageDraw, box: Box, fill: Fill) -> None:
    width = max(2, round((box[2] - box[0]) * 0.16))
    draw.ellipse(box, outline=fill, width=width)


def _stripes(draw: ImageDraw.ImageDraw, box: Box, fill: Fill) -> None:
    size = IMAGE_SIZE * _SUPERSAMPLE
    period = max(8.0, (box[2] - box[0]) / 3)
    y = box[1] % period - period
    while y < size:  # horizontal stripes over the whole image
        draw.rectangle((0, y, size, y + period / 2), fill=fill)
        y += period


SHAPES: dict[str, Callable[[ImageDraw.ImageDraw, Box, Fill], None]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "ring": _ring,
    "stripes": _stripes,
}


def _jitter(colour: Fill, rng: random.Random, amount: int = 12) -> Fill:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def finish(canvas: Image.Image) -> Image.Image:
    """Downsample a 2x supersampled canvas to the final 64x64 RGB image."""
    return canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def random_box(rng: random.Random, min_frac: float, max_frac: float) -> Box:
    """A square box (2x canvas coordinates) of random size and position inside the canvas."""
    size = IMAGE_SIZE * _SUPERSAMPLE
    side = rng.uniform(min_frac, max_frac) * size
    x0 = rng.uniform(0.05 * size, 0.95 * size - side)
    y0 = rng.uniform(0.05 * size, 0.95 * size - side)
    return (x0, y0, x0 + side, y0 + side)


def new_canvas(background: Fill) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A 2x supersampled RGB canvas filled with ``background`` and its drawing context."""
    size = IMAGE_SIZE * _SUPERSAMPLE
    canvas = Image.new("RGB", (size, size), background)
    return canvas, ImageDraw.Draw(canvas)


def shape_image(shape: str, colour: str, background: str, rng: random.Random) -> Image.Image:
    """One ``colour`` ``shape`` on a ``background`` at a random position and size."""
    canvas, draw = new_canvas(_jitter(COLOURS[background], rng))
    SHAPES[shape](draw, random_box(rng, 0.35, 0.7), _jitter(COLOURS[colour], rng))
    return finish(canvas)


def caption(shape: str, colour: str, background: str) -> str:
    """The caption of a shape image, e.g. "a red circle on a blue background"."""
    thing = f"{colour} stripes" if shape == "stripes" else f"{article(colour)} {colour} {shape}"
    return f"{thing} on {article(background)} {background} background"


def article(word: str) -> str:
    """ "a" or "an" for ``word``."""
    return "an" if word[0] in "aeiou" else "a"


def procedural_dataset(n: int, seed: int = 0) -> tuple[list[Image.Image], list[str]]:
    """``n`` seeded shape images and their captions (colour and background always differ)."""
    rng = random.Random(seed)
    names = sorted(COLOURS)
    images, captions = [], []
    for _ in range(n):
        shape = rng.choice(sorted(SHAPES))
        colour, background = rng.sample(names, 2)
        images.append(shape_image(shape, colour, background, rng))
        captions.append(caption(shape, colour, background))
    return images, captions


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """Images as an (n, 3, H, W) float32 tensor in [-1, 1] (the VAE's input range)."""
    import torch

    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(arr.transpose(0, 3, 1, 2) / 127.5 - 1.0)


def to_images(tensor: torch.Tensor) -> list[Image.Image]:
    """The inverse of ``to_tensor`` (values clipped to [-1, 1])."""
    import torch

    arr = ((tensor.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in arr]

"""Cheap checks that the demo adapters learned the concept: render and compare to references.

These measures are for the demo's own sanity checks and tests (no model, no download); the
benchmark's real metrics live in ``t2i_bench.metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

_BINS = 3  # per RGB channel: 27 coarse colour bins (robust to the tiny VAE's colour drift)


def render(
    pipe: StableDiffusionPipeline,
    prompt: str,
    seeds: Sequence[int],
    steps: int = 20,
    guidance_scale: float = 5.0,
) -> list[Image.Image]:
    """One image per seed (each its own CPU generator), batched."""
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    out = pipe(
        [prompt] * len(seeds),
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=generators,
    )
    return out.images


def colour_histogram(images: Sequence[Image.Image]) -> np.ndarray:
    """The mean normalised 3x3x3-bin RGB histogram of ``images``."""
    hists = []
    for im in images:
        q = np.asarray(im.convert("RGB"), dtype=np.int64) * _BINS // 256
        codes = (q[..., 0] * _BINS + q[..., 1]) * _BINS + q[..., 2]
        h = np.bincount(codes.ravel(), minlength=_BINS**3).astype(np.float64)
        hists.append(h / h.sum())
    return np.mean(hists, axis=0)


def histogram_distance(images: Sequence[Image.Image], references: Sequence[Image.Image]) -> float:
    """Total-variation distance (0..1) between the sets' mean colour histograms."""
    return float(0.5 * np.abs(colour_histogram(images) - colour_histogram(references)).sum())


def nearest_pixel_distance(
    images: Sequence[Image.Image], references: Sequence[Image.Image]
) -> float:
    """Mean over ``images`` of the RMS pixel distance (0..1) to the nearest reference."""
    refs = np.stack([np.asarray(r.convert("RGB"), dtype=np.float64) / 255 for r in references])
    dists = []
    for im in images:
        x = np.asarray(im.convert("RGB"), dtype=np.float64) / 255
        dists.append(np.sqrt(((refs - x) ** 2).mean(axis=(1, 2, 3))).min())
    return float(np.mean(dists))

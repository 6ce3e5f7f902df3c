"""Render one batch of images: one seeded generator per image, so pixels never depend on
which other prompts share the batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from t2i_bench.config import SamplerConfig


class BadImageError(RuntimeError):
    """The pipeline produced NaN or an all-black image."""


def to_pil(array: np.ndarray) -> Image.Image:
    """float [0, 1] HWC -> 8-bit RGB, rounding like diffusers' ``numpy_to_pil``."""
    return Image.fromarray((np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8))


def check_image(array: np.ndarray) -> str | None:
    """Why an output image is unusable, or None."""
    if not np.all(np.isfinite(array)):
        return "image contains NaN/inf values"
    if float(np.max(array)) <= 0.0:
        return "image is completely black"
    return None


def render_batch(
    pipe, prompts: Sequence[str], seeds: Sequence[int], sampler: SamplerConfig
) -> list[Image.Image | BadImageError]:
    """Images for ``prompts`` with per-image seeds; a bad output is returned as an error."""
    generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    negative = [sampler.negative_prompt] * len(prompts) if sampler.guidance_scale > 1 else None
    with torch.inference_mode():
        result = pipe(
            prompt=list(prompts),
            negative_prompt=negative,
            num_inference_steps=sampler.steps,
            guidance_scale=sampler.guidance_scale,
            height=sampler.height,
            width=sampler.width,
            generator=generators,
            output_type="np",
        )
    out: list[Image.Image | BadImageError] = []
    for array in result.images:
        problem = check_image(array)
        out.append(BadImageError(problem) if problem else to_pil(array))
    return out

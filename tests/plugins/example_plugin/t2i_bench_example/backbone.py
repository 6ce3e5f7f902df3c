"""A backbone with no model: per-image colour saturation statistics (HSV saturation mean and
a 4-bin histogram). Registered on import; its describer knows its identity statically."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from t2i_bench.backbones.base import Backbone, BackboneSpec, register_backbone

NAME = "saturation"
PREPROCESSING = "RGB -> HSV (Pillow); S channel / 255"


class Saturation(Backbone):
    name = NAME
    preprocessing = PREPROCESSING

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.forward_calls += 1
        rows = []
        for image in images:
            s = np.asarray(image.convert("HSV"), dtype=np.float32)[..., 1] / 255.0
            hist, _ = np.histogram(s, bins=4, range=(0.0, 1.0))
            rows.append([s.mean(), *(hist / s.size)])
        return np.asarray(rows, dtype=np.float32)


def describe(profile: str, **options: object) -> BackboneSpec:
    return BackboneSpec(NAME, profile, "1", "HSV statistics (no weights)", PREPROCESSING, "none")


@register_backbone(NAME, describe=describe)
def make(profile: str, device: str = "cpu", **options: object) -> Saturation:
    return Saturation()

"""A metric that needs an image variant the core has never heard of: the adapter's own image
of the prompt with ", black and white photo" appended, for the same seed. ``bw_gap`` is the
drop in mean saturation from the image to that variant: does the model follow a colour
instruction? Nothing outside this package names it."""

from __future__ import annotations

import numpy as np

from t2i_bench.concepts import Concept
from t2i_bench.metrics.base import Group, ImageVariant, Metric


def _black_and_white(concept: Concept, prompt: str) -> str:
    return f"{prompt}, black and white photo"


BW = ImageVariant("bw_self", "self", _black_and_white, "the same prompt in black and white")


class BlackAndWhiteGap(Metric):
    name = "bw_gap"
    axis = "controllability"
    backbone = "saturation"
    kind = "image"
    variants = (BW,)
    convention = "mean HSV saturation of the image minus that of its black-and-white variant"
    description = "saturation drop when the prompt asks for black and white (plugin example)"

    def compute(self, group: Group) -> dict[str, float]:
        index, bw_shas = group.paired(BW.name)
        own = group.features(self.backbone, [group.image_shas[i] for i in index])[:, 0]
        bw = group.features(self.backbone, bw_shas)[:, 0]
        gap = np.asarray(own) - np.asarray(bw)
        return {group.image_keys[i]: float(v) for i, v in zip(index, gap, strict=True)}

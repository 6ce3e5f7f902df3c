"""Fidelity to the concept's reference images."""

from __future__ import annotations

import numpy as np

from t2i_bench.metrics.base import SET_ITEM, Group, Metric, register_metric


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)


@register_metric
class ClipI(Metric):
    name = "clip_i"
    backbone = "clip"
    prompt_types = ("train", "trigger", "alter")
    kind = "set"
    convention = "raw cosine"
    description = "mean cosine of CLIP image features over all generated × reference pairs"

    def compute(self, group: Group) -> dict[str, float]:
        gen = _normalise(group.image_features(self.backbone))
        ref = _normalise(group.reference_features(self.backbone))
        return {SET_ITEM: float((gen @ ref.T).mean())}

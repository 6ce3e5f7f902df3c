"""Controllability: does the image follow the prompt?"""

from __future__ import annotations

import numpy as np

from t2i_bench.metrics.base import Group, Metric, register_metric


@register_metric
class ClipT(Metric):
    name = "clip_t"
    backbone = "clip"
    prompt_types = ("alter", "style")
    kind = "image"
    needs_text = True
    convention = "raw cosine; trigger removed from the prompt per the concept's clip_t_rule"
    description = "cosine of CLIP image and text features"

    def texts(self, group: Group) -> list[str]:
        return [group.concept.text_for_clip_t(p) for p in group.prompts]

    def compute(self, group: Group) -> dict[str, float]:
        img = np.asarray(group.image_features(self.backbone), dtype=np.float64)
        txt = np.asarray(group.text_features(self.backbone, self.texts(group)), dtype=np.float64)
        img /= np.linalg.norm(img, axis=1, keepdims=True).clip(min=1e-12)
        txt /= np.linalg.norm(txt, axis=1, keepdims=True).clip(min=1e-12)
        cos = (img * txt).sum(axis=1)
        return {key: float(c) for key, c in zip(group.image_keys, cos, strict=True)}

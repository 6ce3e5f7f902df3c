"""Diversity of the images of one prompt, averaged over prompts."""

from __future__ import annotations

import numpy as np

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import SET_ITEM, Group, Metric, register_metric


class _PerPrompt(Metric):
    kind = "set"
    baseline = "all"
    axis = "diversity"

    def per_prompt(self, features: np.ndarray) -> float:
        raise NotImplementedError

    def compute(self, group: Group) -> dict[str, float]:
        features = group.image_features(self.backbone)
        values = [self.per_prompt(features[idx]) for idx in group.by_prompt() if len(idx) > 1]
        if not values:
            raise ValueError("diversity needs at least 2 images per prompt (images_per_prompt)")
        return {SET_ITEM: float(np.mean(values))}


@register_metric
class Vendi(_PerPrompt):
    name = "vendi"
    backbone = "dino"
    convention = "q=1, linear kernel on L2-normalised DINO features; per prompt, then mean"
    description = "Vendi score (effective number of distinct images)"

    def per_prompt(self, features: np.ndarray) -> float:
        return F.vendi_score(features, q=1.0)


@register_metric
class LpipsDiversity(_PerPrompt):
    name = "lpips_div"
    backbone = "lpips"
    convention = "mean pairwise LPIPS (AlexNet) within a prompt, then mean over prompts"
    description = "mean pairwise perceptual distance between images of one prompt"

    def per_prompt(self, features: np.ndarray) -> float:
        return F.lpips_diversity(features)

"""Diversity of the images of one prompt, averaged over prompts."""

from __future__ import annotations

import numpy as np

from t2i_bench.analysis.bootstrap import ResamplePlan
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

    def replicates(self, group: Group, plan: ResamplePlan) -> np.ndarray:
        """With two or more prompts, the mean of the per-prompt values over the prompts each
        resample drew (a prompt's images stay together: a repeated image is no new image);
        with one prompt, :meth:`within_prompt` resamples its images."""
        if len(plan.prompts) < 2:
            return self.within_prompt(group, plan)
        features = group.image_features(self.backbone)
        values = np.full(len(plan.prompts), np.nan)
        for p, members in enumerate(plan.strata):
            if len(members) > 1:
                values[p] = self.per_prompt(features[members])
        has = np.isfinite(values)
        if not has.any():
            return np.full(plan.n_boot, np.nan)
        w = plan.prompt_weights[:, has]
        with np.errstate(invalid="ignore", divide="ignore"):
            return w @ values[has] / w.sum(axis=1)

    def within_prompt(self, group: Group, plan: ResamplePlan) -> np.ndarray:
        """A single prompt's value on the *distinct* images each resample drew (a repeated
        image is no new image); NaN for a resample that drew fewer than two."""
        features = group.image_features(self.backbone)
        out = np.full(plan.n_boot, np.nan)
        for b in range(plan.n_boot):
            drawn = np.flatnonzero(plan.weights[b] > 0)
            if len(drawn) > 1:
                out[b] = self.per_prompt(features[drawn])
        return out


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

    def within_prompt(self, group: Group, plan: ResamplePlan) -> np.ndarray:
        """The weighted mean of ||e_a - e_b||² over pairs of *different* images of each
        resample (a repeated image is no pair of images): the value itself for a resample
        without repeats; NaN for a resample that drew a single image."""
        features = np.asarray(group.image_features(self.backbone), dtype=np.float64)
        w, gram = plan.weights, features @ features.T
        total = w.sum(axis=1)
        spread = total * (w @ np.diag(gram)) - ((w @ gram) * w).sum(axis=1)
        pairs = total**2 - (w * w).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, 2.0 * spread / pairs, np.nan)

"""Distribution distances between generated and reference images (Inception features)."""

from __future__ import annotations

import warnings

import numpy as np

from t2i_bench.analysis.bootstrap import ResamplePlan
from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import SET_ITEM, Group, Metric, register_metric


@register_metric
class Fid(Metric):
    name = "fid"
    baseline = "split"
    backbone = "inception"
    kind = "set"
    axis = "fidelity"
    uses_references = True
    higher_is_better = False
    convention = "2048-d pool features; real part of sqrtm; eps·I retry when singular"
    description = "Fréchet Inception Distance to the reference images"

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        if min(len(gen), len(ref)) <= gen.shape[1]:
            result = F.fid_exact_low_rank(gen, ref)  # exact, and no d×d sqrtm
        else:
            a, b = F.FeatureStats.from_features(gen), F.FeatureStats.from_features(ref)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                result = F.fid_from_stats(a.mean, a.cov, b.mean, b.cov, n1=a.n, n2=b.n)
        if result.low_sample:
            group.notes.append(
                f"fid: {result.n_gen} generated and {result.n_ref} reference images for "
                f"{result.dim}-d features (n <= dim): the covariance is rank-deficient and FID "
                "is biased; compare only values with equal sample counts"
            )
        return {SET_ITEM: result.value}


class _Kid(Metric):
    baseline = "split"
    backbone = "inception"
    kind = "set"
    axis = "fidelity"
    uses_references = True
    higher_is_better = False
    convention = "poly kernel (d=3, γ=1/dim, c=1); subset size min(1000, n_gen, n_ref); 100 subsets"
    statistic = 0  # 0: mean, 1: std

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        return {SET_ITEM: F.kid(gen, ref, subset_size=1000, subsets=100, seed=0)[self.statistic]}

    def replicates(self, group: Group, plan: ResamplePlan) -> np.ndarray:
        """KID of each resample, from kernel matrices of the distinct images (same values as
        ``compute`` on the resampled group)."""
        if not plan.balanced:  # resamples of different sizes draw different KID subsets
            return super().replicates(group, plan)
        draws = np.stack([plan.indices(b) for b in range(plan.n_boot)])
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        reps = F.kid_replicates(gen, ref, draws, subset_size=1000, subsets=100, seed=0)
        return reps[:, self.statistic]


@register_metric
class Kid(_Kid):
    name = "kid"
    description = "Kernel Inception Distance to the reference images (mean over subsets)"


@register_metric
class KidStd(_Kid):
    name = "kid_std"
    statistic = 1
    description = "standard deviation of KID over subsets"

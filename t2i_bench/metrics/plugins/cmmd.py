"""CMMD (Jayasumana et al., CVPR 2024): MMD on CLIP embeddings instead of FID."""

from __future__ import annotations

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import BASE_IMAGE, SET_ITEM, Group, Metric, register_metric

CONVENTION = (
    "1000·MMD², Gaussian RBF σ=10 on L2-normalised CLIP ViT-L/14@336 embeddings; biased "
    "(V-statistic) estimator as the published code"
)


@register_metric
class Cmmd(Metric):
    name = "cmmd"
    backbone = "clip_vit_l14_336"
    kind = "set"
    baseline = "split"
    higher_is_better = False
    axis = "fidelity"
    uses_references = True
    convention = CONVENTION
    description = "CLIP maximum mean discrepancy to the reference images (no normality assumption)"

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        return {SET_ITEM: F.cmmd(gen, ref)}


@register_metric
class CmmdBase(Metric):
    name = "cmmd_base"
    backbone = "clip_vit_l14_336"
    kind = "set"
    axis = "preservation"
    variants = (BASE_IMAGE,)
    higher_is_better = False
    prompt_types = ("agnostic",)
    convention = CONVENTION + "; the base model's images for the same prompts and seeds"
    description = "CMMD between the adapter's and the base model's agnostic-prompt images"

    def compute(self, group: Group) -> dict[str, float]:
        index, base_shas = group.paired_base()
        if not index:
            raise ValueError("cmmd_base needs the base model's images for the same prompts")
        own = group.features(self.backbone, [group.image_shas[i] for i in index])
        return {SET_ITEM: F.cmmd(own, group.features(self.backbone, base_shas))}

"""Fidelity to the concept's reference images (train, trigger and alter prompts)."""

from __future__ import annotations

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import SET_ITEM, Group, Metric, register_metric

FIDELITY_TYPES = ("train", "trigger", "alter")


class _MeanCosine(Metric):
    kind = "set"
    baseline = "split"
    prompt_types = FIDELITY_TYPES
    convention = "raw cosine"

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        return {SET_ITEM: F.mean_pairwise_cosine(gen, ref)}


@register_metric
class ClipI(_MeanCosine):
    name = "clip_i"
    backbone = "clip"
    description = "mean cosine of CLIP image features over all generated × reference pairs"


@register_metric
class Dino(_MeanCosine):
    name = "dino"
    backbone = "dino"
    description = "mean cosine of DINO CLS features over all generated × reference pairs"


@register_metric
class SquaredCentroidDistance(Metric):
    name = "scd"
    baseline = "split"
    backbone = "dino"
    kind = "set"
    higher_is_better = False
    prompt_types = FIDELITY_TYPES
    convention = "features L2-normalised before the centroids"
    description = "squared distance between the centroids of generated and reference features"

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        return {SET_ITEM: F.centroid_sq_distance(gen, ref)}


@register_metric
class PromptSimilarity(Metric):
    name = "prompt_similarity"
    backbone = "clip"
    kind = "image"
    needs_base = True
    prompt_types = ("alter", "style")
    convention = "raw cosine; the base image's prompt has the trigger replaced by the class word"
    description = (
        "CLIP image similarity between the adapter's image for a prompt with the concept and "
        "the base model's image for the same prompt without it (Guralnick et al.)"
    )

    def compute(self, group: Group) -> dict[str, float]:
        index = [i for i, sha in enumerate(group.plain_base_shas) if sha is not None]
        own = group.features(self.backbone, [group.image_shas[i] for i in index])
        plain = group.features(self.backbone, [group.plain_base_shas[i] for i in index])
        cos = F.paired_cosine(own, plain)
        return {group.image_keys[i]: float(c) for i, c in zip(index, cos, strict=True)}

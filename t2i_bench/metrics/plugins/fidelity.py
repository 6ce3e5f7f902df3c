"""Fidelity to the concept's reference images (train, trigger and alter prompts)."""

from __future__ import annotations

import numpy as np

from t2i_bench.analysis.bootstrap import ResamplePlan
from t2i_bench.concepts import Concept
from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import SET_ITEM, Group, ImageVariant, Metric, register_metric


def _without_concept(concept: Concept, prompt: str) -> str:
    return concept.text_for_clip_t(prompt)


#: The base model's image for the prompt with the concept removed (Guralnick et al.).
PLAIN_BASE = ImageVariant(
    "plain_base",
    "base",
    _without_concept,
    "the base model's image for the prompt without the concept (per the concept's clip_t_rule)",
)


class _MeanCosine(Metric):
    kind = "set"
    axis = "fidelity"
    uses_references = True
    baseline = "split"
    convention = "raw cosine"

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        return {SET_ITEM: F.mean_pairwise_cosine(gen, ref)}

    def replicates(self, group: Group, plan: ResamplePlan) -> np.ndarray:
        """The mean over images of each image's mean cosine to the references, resampled."""
        gen = group.image_features(self.backbone)
        terms = F.mean_similarity_to_refs(gen, group.reference_features(self.backbone))
        return plan.weights @ terms / plan.weights.sum(axis=1)


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
    axis = "fidelity"
    uses_references = True
    higher_is_better = False
    convention = "features L2-normalised before the centroids"
    description = "squared distance between the centroids of generated and reference features"

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        return {SET_ITEM: F.centroid_sq_distance(gen, ref)}

    def replicates(self, group: Group, plan: ResamplePlan) -> np.ndarray:
        """Centroids of the resampled unit vectors against the reference centroid."""
        gen = F.l2_normalize(group.image_features(self.backbone))
        ref = F.l2_normalize(group.reference_features(self.backbone)).mean(axis=0)
        diff = plan.weights @ gen / plan.weights.sum(axis=1)[:, None] - ref
        return np.einsum("ij,ij->i", diff, diff)


@register_metric
class PromptSimilarity(Metric):
    name = "prompt_similarity"
    backbone = "clip"
    kind = "image"
    axis = "controllability"
    variants = (PLAIN_BASE,)
    convention = "raw cosine; the base image's prompt has the trigger replaced by the class word"
    description = (
        "CLIP image similarity between the adapter's image for a prompt with the concept and "
        "the base model's image for the same prompt without it (Guralnick et al.)"
    )

    def compute(self, group: Group) -> dict[str, float]:
        index, plain_shas = group.paired(PLAIN_BASE.name)
        own = group.features(self.backbone, [group.image_shas[i] for i in index])
        plain = group.features(self.backbone, plain_shas)
        cos = F.paired_cosine(own, plain)
        return {group.image_keys[i]: float(c) for i, c in zip(index, cos, strict=True)}

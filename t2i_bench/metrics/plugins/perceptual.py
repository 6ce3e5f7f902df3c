"""DreamSim (Fu et al., NeurIPS 2023): perceptual similarity trained on human judgments."""

from __future__ import annotations

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import BASE_IMAGE, Group, Metric, register_metric

CONVENTION = (
    "similarity = 1 − DreamSim distance = cosine of the normalised ensemble embeddings "
    "(dreamsim 0.2.1 ensemble: DINO + CLIP + OpenCLIP ViT-B/16 with LoRA)"
)


@register_metric
class DreamSim(Metric):
    name = "dreamsim"
    backbone = "dreamsim"
    kind = "image"
    axis = "fidelity"
    uses_references = True
    convention = CONVENTION + "; per image, mean over the concept's references"
    description = "DreamSim similarity to the references (human-aligned; 96.2% on NIGHTS)"

    def compute(self, group: Group) -> dict[str, float]:
        gen = group.image_features(self.backbone)
        ref = group.reference_features(self.backbone)
        values = F.mean_similarity_to_refs(gen, ref)
        return {key: float(v) for key, v in zip(group.image_keys, values, strict=True)}


@register_metric
class DreamSimBase(Metric):
    name = "dreamsim_base"
    backbone = "dreamsim"
    kind = "image"
    axis = "preservation"
    variants = (BASE_IMAGE,)
    convention = CONVENTION + "; per image against the base model's image, same prompt and seed"
    description = "DreamSim similarity between the adapter's and the base model's image"

    def compute(self, group: Group) -> dict[str, float]:
        index, base_shas = group.paired_base()
        own = group.features(self.backbone, [group.image_shas[i] for i in index])
        base = group.features(self.backbone, base_shas)
        values = F.paired_cosine(own, base)
        return {group.image_keys[i]: float(v) for i, v in zip(index, values, strict=True)}

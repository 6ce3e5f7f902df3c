"""What the concept does where it should not: bleed into prompts that never mention it, and
memorised copies of the training images."""

from __future__ import annotations

from dataclasses import dataclass

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import BASE_IMAGE, Group, Metric, register_metric

COPY_QUANTILE = 0.0  # copy threshold: the smallest reference-to-nearest-reference distance


class _Bleed(Metric):
    kind = "image"
    axis = "preservation"
    variants = (BASE_IMAGE,)
    uses_references = True
    higher_is_better = False
    prompt_types = ("agnostic",)

    def compute(self, group: Group) -> dict[str, float]:
        index, base_shas = group.paired_base()
        own = group.features(self.backbone, [group.image_shas[i] for i in index])
        base = group.features(self.backbone, base_shas)
        values = F.bleed(own, base, group.reference_features(self.backbone))
        return {group.image_keys[i]: float(v) for i, v in zip(index, values, strict=True)}


@register_metric
class Bleed(_Bleed):
    name = "bleed"
    backbone = "dino"
    convention = (
        "per image: mean DINO cosine to the concept's references of the adapter's agnostic "
        "image minus that of the base model's image (same prompt and seed); 0 = no leak"
    )
    description = "concept bleed: how much more prompts that never mention it look like the concept"


@register_metric
class BleedDreamSim(_Bleed):
    name = "bleed_dreamsim"
    backbone = "dreamsim"
    convention = "as bleed, with DreamSim similarity (1 − DreamSim distance)"
    description = "concept bleed measured with DreamSim similarity"


@dataclass(frozen=True)
class NearestPair:
    """A generated image, its nearest reference, their distance, and whether it is a copy."""

    image_key: str
    reference_sha: str
    distance: float
    threshold: float
    is_copy: bool


def nearest_pairs(group: Group, role: str = "dino") -> list[NearestPair]:
    """Each generated image's nearest reference (for the report's side-by-side view)."""
    result = F.copy_detection(
        group.image_features(role), group.reference_features(role), COPY_QUANTILE
    )
    return [
        NearestPair(key, group.reference_shas[j], float(d), result.threshold, bool(c))
        for key, j, d, c in zip(
            group.image_keys, result.nearest, result.distance, result.is_copy, strict=True
        )
    ]


@register_metric
class CopyRate(Metric):
    name = "copy_rate"
    backbone = "dino"
    kind = "image"
    uses_references = True
    higher_is_better = False
    prompt_types = ("train", "trigger", "alter")
    convention = (
        "1 when the image's nearest reference (DINO cosine distance) is closer than the "
        "closest two references are to each other, else 0; mean = share of copies"
    )
    description = "memorisation: share of images nearer to a training image than any two are"

    def compute(self, group: Group) -> dict[str, float]:
        pairs = nearest_pairs(group, self.backbone)
        if pairs and pairs[0].threshold < 1e-6:
            group.notes.append(
                "copy_rate: two reference images are (near-)duplicates, so the copy threshold "
                "is ~0 and no image can count as a copy"
            )
        return {p.image_key: float(p.is_copy) for p in pairs}

    def reference_pairs(self, group: Group) -> list[NearestPair]:
        """Each image beside its nearest reference (the report shows them side by side)."""
        return nearest_pairs(group, self.backbone)

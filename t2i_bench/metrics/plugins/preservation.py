"""Base-model preservation: the adapter's image against the base model's image for the same
prompt and seed, on prompts that never mention the concept (agnostic) and style prompts."""

from __future__ import annotations

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import BASE_IMAGE, Group, Metric, register_metric


class _Paired(Metric):
    kind = "image"
    axis = "preservation"
    variants = (BASE_IMAGE,)

    def pairs(self, group: Group):
        index, base_shas = group.paired_base()
        own = group.features(self.backbone, [group.image_shas[i] for i in index])
        base = group.features(self.backbone, base_shas)
        return [group.image_keys[i] for i in index], own, base


@register_metric
class StyleLossBase(_Paired):
    name = "style_loss_base"
    backbone = "vgg"
    higher_is_better = False
    convention = (
        "VGG-19 Gram matrices of conv1_1…conv5_1, each normalised by c·h·w; "
        "sum of squared differences"
    )
    description = "Gram style loss between the adapter's and the base model's image"

    def compute(self, group: Group) -> dict[str, float]:
        keys, own, base = self.pairs(group)
        return dict(zip(keys, map(float, F.sq_distance_pairs(own, base)), strict=True))


@register_metric
class DinoBase(_Paired):
    name = "dino_base"
    backbone = "dino"
    convention = "raw cosine of DINO CLS features"
    description = "DINO similarity between the adapter's and the base model's image"

    def compute(self, group: Group) -> dict[str, float]:
        keys, own, base = self.pairs(group)
        return dict(zip(keys, map(float, F.paired_cosine(own, base)), strict=True))

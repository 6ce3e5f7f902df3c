"""Human preference and aesthetic quality per image: HPS v2.1 and the LAION aesthetic
predictor v2."""

from __future__ import annotations

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import Group, Metric, register_metric

ALL_TYPES = ("train", "trigger", "alter", "style", "agnostic")


@register_metric
class HpsV2(Metric):
    name = "hpsv2"
    backbone = "hpsv2"
    kind = "image"
    axis = "preference"
    needs_text = True
    prompt_types = ALL_TYPES
    convention = (
        "HPS v2.1: cosine of HPS-tuned open_clip ViT-H/14 image and prompt features (no logit "
        "scale); trigger replaced per the concept's clip_t_rule"
    )
    description = "Human Preference Score v2.1 (84.1% agreement with human choices on HPD v2)"

    def texts(self, group: Group) -> list[str]:
        return [group.concept.text_for_clip_t(p) for p in group.prompts]

    def compute(self, group: Group) -> dict[str, float]:
        img = group.image_features(self.backbone)
        txt = group.text_features(self.backbone, self.texts(group))
        scores = F.clip_score(img, txt, "raw")
        return {key: float(v) for key, v in zip(group.image_keys, scores, strict=True)}


@register_metric
class Aesthetic(Metric):
    name = "aesthetic"
    backbone = "clip_vit_l14_openai"  # the embeddings the head was trained on
    head = "laion_aesthetic_v2"
    kind = "image"
    axis = "preference"
    prompt_types = ALL_TYPES
    convention = (
        "LAION aesthetic predictor v2 (sac+logos+ava1-l14-linearMSE) MLP on L2-normalised "
        "OpenAI CLIP ViT-L/14 image embeddings; 1-10 scale as trained"
    )
    description = "LAION aesthetic score (predicted 1-10 rating of how good an image looks)"

    def compute(self, group: Group) -> dict[str, float]:
        head = group.head(self.head, self.backbone)
        scores = head.apply(group.image_features(self.backbone))
        return {key: float(v) for key, v in zip(group.image_keys, scores, strict=True)}

"""Controllability: does the image follow the prompt (alter and style prompts)?"""

from __future__ import annotations

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import Group, Metric, register_metric


class _ClipT(Metric):
    backbone = "clip"
    axis = "controllability"
    kind = "image"
    needs_text = True
    scale = "raw"

    def texts(self, group: Group) -> list[str]:
        return [group.concept.text_for_clip_t(p) for p in group.prompts]

    def compute(self, group: Group) -> dict[str, float]:
        img = group.image_features(self.backbone)
        txt = group.text_features(self.backbone, self.texts(group))
        scores = F.clip_score(img, txt, self.scale)
        return {key: float(v) for key, v in zip(group.image_keys, scores, strict=True)}


@register_metric
class ClipT(_ClipT):
    name = "clip_t"
    convention = "raw cosine; trigger removed from the prompt per the concept's clip_t_rule"
    description = "cosine of CLIP image and text features"


@register_metric
class ClipTScaled(_ClipT):
    name = "clip_t_x2_5"
    scale = "x2.5"
    convention = "2.5·max(cos, 0) (CLIPScore, Hessel et al.)"
    description = "CLIP-T on the CLIPScore scale"


@register_metric
class ClipT100(_ClipT):
    name = "clip_t_x100"
    scale = "x100"
    convention = "100·max(cos, 0)"
    description = "CLIP-T on the 0-100 scale"

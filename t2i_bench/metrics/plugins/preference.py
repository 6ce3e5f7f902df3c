"""Human-preference models: ImageReward and PickScore, per image and prompt."""

from __future__ import annotations

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.base import Group, Metric, register_metric


class _Preference(Metric):
    kind = "image"
    axis = "preference"

    def texts(self, group: Group) -> list[str]:
        """The prompt as the preference model reads it: the trigger word (meaningless to it)
        replaced per the concept's CLIP-T rule."""
        return [group.concept.text_for_clip_t(p) for p in group.prompts]


@register_metric
class ImageReward(_Preference):
    name = "image_reward"
    backbone = "image_reward"
    convention = "ImageReward v1.0 reward, (head − mean) / std as the image-reward package"
    description = "ImageReward human-preference score"

    def compute(self, group: Group) -> dict[str, float]:
        model = group.backbone(self.backbone)
        rewards = model.score_embeddings(group.image_features(self.backbone), self.texts(group))
        return dict(zip(group.image_keys, map(float, rewards), strict=True))


@register_metric
class PickScore(_Preference):
    name = "pickscore"
    backbone = "pickscore"
    needs_text = True
    convention = "raw logit_scale·cosine (not minus 21)"
    description = "PickScore human-preference score"

    def compute(self, group: Group) -> dict[str, float]:
        scale = group.backbone(self.backbone).logit_scale
        img = group.image_features(self.backbone)
        txt = group.text_features(self.backbone, self.texts(group))
        return dict(zip(group.image_keys, map(float, F.pickscore(img, txt, scale)), strict=True))

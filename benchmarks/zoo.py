"""Backbones for the scoring comparisons: published architectures with random weights.

No weights can be downloaded here, so each model is built once per process with random
weights (the *prototype*); "loading" a model is a ``copy.deepcopy`` of its prototype, for
t2i-bench and for the per-metric scripts alike (cheaper than reading weights from disk, so it
favours the side that loads more often: the per-metric scripts).

- ``clip``: open_clip ``ViT-B-32`` at 224 px (open_clip's eval transform).
- ``dino``: transformers ``Dinov2Model`` with DINOv2-small's config (ViT-S/14, 384-d),
  ``BitImageProcessor`` as published (shortest edge 256 bicubic, center crop 224).
- ``lpips``: LPIPS on the full AlexNet feature stack at its published 256 px input.
- ``inception``: the FID Inception-v3 graph of the ``tiny`` profile (in-network resize to
  75 px instead of 299: the full-size graph costs ~0.3 s an image on one core here).
- ``vgg``: the ``tiny`` profile's VGG-19 layout at 1/8 width, 64 px.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from t2i_bench.backbones.base import Backbone
from t2i_bench.metrics.embed import Backbones

DESCRIPTION = (
    "open_clip ViT-B-32 @224 and DINOv2-small (ViT-S/14) @224 and LPIPS AlexNet @256, random "
    "weights; FID Inception-v3 (75 px input) and VGG-19 (1/8 width, 64 px) from the tiny profile"
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _clip_model() -> torch.nn.Module:
    import open_clip

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # "no pretrained weights loaded" is the point here
    try:
        torch.manual_seed(0)
        return open_clip.create_model("ViT-B-32", pretrained=None).eval()
    finally:
        logger.setLevel(level)


def _dino_model() -> torch.nn.Module:
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14, image_size=518
    )
    torch.manual_seed(0)
    return Dinov2Model(config).eval()


def dino_processor() -> Any:
    from transformers import BitImageProcessor

    return BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        resample=3,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        do_convert_rgb=True,
    )


def _lpips_net() -> torch.nn.Module:
    from t2i_bench.backbones.lpips_net import build_tiny_lpips

    return build_tiny_lpips()


def _inception_net() -> torch.nn.Module:
    from t2i_bench.backbones.inception import build_tiny_inception

    return build_tiny_inception()


def _vgg_features() -> torch.nn.Module:
    from t2i_bench.backbones.vgg import build_tiny_vgg

    return build_tiny_vgg()


BUILDERS = {
    "clip": _clip_model,
    "dino": _dino_model,
    "lpips": _lpips_net,
    "inception": _inception_net,
    "vgg": _vgg_features,
}


@dataclass
class Zoo:
    """Random-weight prototypes, built on first use; ``model(role)`` is a fresh copy."""

    _prototypes: dict[str, torch.nn.Module] = field(default_factory=dict)

    def prototype(self, role: str) -> torch.nn.Module:
        if role not in self._prototypes:
            self._prototypes[role] = BUILDERS[role]()
        return self._prototypes[role]

    def warm(self) -> None:
        for role in BUILDERS:
            self.prototype(role)

    def model(self, role: str) -> torch.nn.Module:
        """Load ``role``'s model: a deep copy of its prototype."""
        return copy.deepcopy(self.prototype(role))

    def backbone(self, role: str, batch_size: int = 32) -> Backbone:
        """The t2i-bench backbone class of ``role`` around a freshly loaded model."""
        label = "random-init"
        if role == "clip":
            import open_clip

            from t2i_bench.backbones.clip import ClipBackbone

            tokenizer = open_clip.get_tokenizer("ViT-B-32")
            model = self.model(role)
            return ClipBackbone("clip_vit_b32", model, tokenizer, "real", label, "cpu", batch_size)
        if role == "dino":
            from t2i_bench.backbones.dino import DinoBackbone

            model, processor = self.model(role), dino_processor()
            return DinoBackbone("dinov2_vits14", model, processor, "real", label, "cpu", batch_size)
        if role == "lpips":
            from t2i_bench.backbones.lpips_net import REAL_SIZE, LPIPSBackbone

            return LPIPSBackbone(self.model(role), REAL_SIZE, "real", label, "cpu", batch_size)
        if role == "inception":
            from t2i_bench.backbones.inception import InceptionBackbone

            return InceptionBackbone(self.model(role), "tiny", label, "cpu", batch_size)
        if role == "vgg":
            from t2i_bench.backbones.vgg import TINY_SIZE, VGGGramBackbone

            return VGGGramBackbone(self.model(role), TINY_SIZE, "tiny", label, "cpu", batch_size)
        raise KeyError(f"no benchmark backbone for role {role!r}")


@dataclass
class ZooBackbones(Backbones):
    """``Backbones`` whose roles are served by a :class:`Zoo` instead of ``load_backbone``."""

    zoo: Zoo = field(default_factory=Zoo)

    def get(self, role: str) -> Backbone:
        if role not in self._built:
            self._built[role] = self.zoo.backbone(role, self.config.batch_size)
        return self._built[role]

    def identity(self, role: str) -> str:
        return self.get(role).identity

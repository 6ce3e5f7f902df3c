"""CLIP ViT-L/14 @ 336 px for CMMD (Jayasumana et al., CVPR 2024): ``clip_vit_l14_336``.

The published CMMD code embeds images with OpenAI's CLIP ViT-L/14 at 336 px after its own
preprocessing: center-crop the largest square, resize it to 336×336 (bicubic, PIL, with
antialiasing), scale to [0, 1], CLIP mean/std. Here the model is open_clip ``ViT-L-14-336``
with the ``openai`` weights (the same network) and that preprocessing; features are the
un-normalised image projections (768-d); :func:`t2i_bench.metrics.functional.cmmd`
normalises them, as the published code's CLIP does.

``real``: the ``openai`` tag through the hub cache, or ``weights=`` /
``T2I_BENCH_CLIP_VIT_L14_336`` (a checkpoint file or an ``open_clip_config.json``
directory). ``tiny``: the shared tiny CLIP (:func:`t2i_bench.backbones.clip.build_tiny_clip`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import open_clip
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from t2i_bench.backbones._torch import TINY_SEED, check_profile, env_source, weights_label
from t2i_bench.backbones.base import register_backbone
from t2i_bench.backbones.clip import ClipBackbone, build_tiny_clip, load_real_clip

ARCH, TAG = "ViT-L-14-336", "openai"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def crop_square_resize(image: Image.Image, size: int) -> Image.Image:
    """CMMD's geometry: the centred largest square, resized to ``size`` (bicubic, PIL)."""
    w, h = image.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), resample=Image.Resampling.BICUBIC)


class CmmdClipBackbone(ClipBackbone):
    """open_clip CLIP with CMMD's crop-then-resize preprocessing."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, profile: str, weights: str,
                 device: str = "cpu", batch_size: int = 32) -> None:  # fmt: skip
        super().__init__("clip_vit_l14_336", model, tokenizer, profile, weights, device, batch_size)
        size = self.model.visual.image_size
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = ",".join(f"{v:.8g}" for v in CLIP_MEAN)
        std = ",".join(f"{v:.8g}" for v in CLIP_STD)
        self.preprocessing = (
            f"RGB; center-crop the largest square, resize to {self.size}x{self.size} (bicubic, "
            f"PIL); to [0,1]; normalize mean=({mean}) std=({std})"
        )

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = [
            TF.normalize(TF.to_tensor(crop_square_resize(im, self.size)), CLIP_MEAN, CLIP_STD)
            for im in images
        ]
        return torch.stack(pixels).to(self.device)


def make_cmmd_clip(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    arch: str | None = None,
) -> CmmdClipBackbone:
    check_profile("clip_vit_l14_336", profile)
    if profile == "tiny":
        tokenizer = open_clip.get_tokenizer(ARCH)
        return CmmdClipBackbone(
            build_tiny_clip(), tokenizer, "tiny", f"seed={TINY_SEED}", device, batch_size
        )
    source = weights or env_source("T2I_BENCH_CLIP_VIT_L14_336", TAG) or TAG
    model, tokenizer = load_real_clip(arch or ARCH, source, tag_for_defaults=TAG, device=device)
    label = f"{ARCH}/{TAG}" if source == TAG else weights_label(source)
    return CmmdClipBackbone(model, tokenizer, "real", label, device, batch_size)


@register_backbone("clip_vit_l14_336")
def _clip_vit_l14_336(profile: str, device: str = "cpu", **options: Any) -> CmmdClipBackbone:
    return make_cmmd_clip(profile, device, **options)

"""Human Preference Score v2.1 (Wu et al. 2023): ``hpsv2``.

open_clip ViT-H/14 fine-tuned on HPD v2 (``xswu/HPSv2``, ``HPS_v2.1_compressed.pt``:
``{"state_dict": ...}`` of the whole CLIP). HPS(image, prompt) = cos(image features, text
features), as the ``hpsv2`` package (1.2.0) scores: ``image_features @ text_features.T`` of
the normalised outputs, no logit scale.

Preprocessing follows the package's validation transform (``light_augmentation=True``):
RGB, to a [0,1] tensor, resize so the *longest* side is 224 (bicubic, antialiased, on the
tensor), pad to 224×224 with zeros centred (left/top get half, rounded down), then OpenAI
CLIP mean/std. The package skips the pad when the longest side is already 224 (a non-square
image then fails in the model); here the pad is always applied. Text: open_clip's CLIP BPE
tokenizer, 77 tokens. The package runs under CUDA autocast (fp16) on a GPU and in float32 on
a CPU; this backbone computes in the run's dtype.

``real``: ``weights=`` / ``T2I_BENCH_HPSV2`` (the checkpoint file), else the hub cache.
``tiny``: a small open_clip CLIP with ViT-H/14's patch size and GELU, seeded.
"""

from __future__ import annotations

import os
from typing import Any

import open_clip
import torch
import torchvision.transforms.functional as TF
from open_clip.transform import PreprocessCfg
from PIL import Image
from torchvision.transforms import InterpolationMode

from t2i_bench.backbones._torch import (
    TINY_SEED,
    check_profile,
    env_source,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import register_backbone
from t2i_bench.backbones.clip import ClipBackbone, load_real_clip
from t2i_bench.errors import BenchError

HUB_ID = "xswu/HPSv2"
FILENAME = "HPS_v2.1_compressed.pt"
ARCH = "ViT-H-14"
BASE_TAG = "laion2b_s32b_b79k"  # the open_clip weights HPS v2 was fine-tuned from
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TINY_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 56, "layers": 2, "width": 64, "head_width": 32, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


class ResizeLongestPad:
    """The hpsv2 package's eval transform on a [0,1] tensor (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        x = TF.to_tensor(image.convert("RGB"))
        h, w = x.shape[1:]
        scale = self.size / float(max(h, w))
        if scale != 1.0:
            h, w = round(h * scale), round(w * scale)
            x = TF.resize(x, [h, w], InterpolationMode.BICUBIC, antialias=True)
        pad_h, pad_w = self.size - h, self.size - w
        x = TF.pad(x, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
        return TF.normalize(x, CLIP_MEAN, CLIP_STD)


class HpsV2Backbone(ClipBackbone):
    """open_clip CLIP with the HPS weights and the hpsv2 package's image transform."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, profile: str, weights: str,
                 device: str = "cpu", batch_size: int = 32) -> None:  # fmt: skip
        super().__init__("hpsv2", model, tokenizer, profile, weights, device, batch_size)
        size = self.model.visual.image_size
        size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.transform = ResizeLongestPad(size)
        mean = ",".join(f"{v:.8g}" for v in CLIP_MEAN)
        std = ",".join(f"{v:.8g}" for v in CLIP_STD)
        self.preprocessing = (
            f"RGB; to [0,1] tensor; resize longest side to {size} (bicubic, antialias, tensor); "
            f"zero-pad centred to {size}x{size}; normalize mean=({mean}) std=({std}); "
            "text: open_clip CLIP BPE, 77 tokens; score = cosine"
        )


def build_tiny_hpsv2(seed: int = TINY_SEED) -> torch.nn.Module:
    with seeded(seed):
        model = open_clip.model.CLIP(**TINY_CFG)
    pp = {**vars(PreprocessCfg()), "size": TINY_CFG["vision_cfg"]["image_size"]}
    open_clip.model.set_model_preprocess_cfg(model, pp)  # read by ClipBackbone, then replaced
    return model.eval()


def _resolve(weights: str | None) -> tuple[str, bool]:
    """(checkpoint path, whether it is the published file from the hub cache)."""
    source = weights or env_source("T2I_BENCH_HPSV2", None)
    if source:
        path = os.path.expanduser(source)
        if not os.path.isfile(path):
            raise BenchError("HPS v2 checkpoint not found", path)
        return path, False
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(HUB_ID, FILENAME), True
    except Exception as exc:
        raise BenchError(
            f"cannot load {HUB_ID}/{FILENAME} ({type(exc).__name__}); download it into the "
            "Hugging Face cache or set T2I_BENCH_HPSV2 to the file"
        ) from exc


def make_hpsv2(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    arch: str | None = None,
) -> HpsV2Backbone:
    """Build ``hpsv2``; ``arch`` overrides the open_clip architecture (tests, small files)."""
    check_profile("hpsv2", profile)
    if profile == "tiny":
        model = build_tiny_hpsv2()
        tokenizer = open_clip.get_tokenizer(ARCH)
        return HpsV2Backbone(model, tokenizer, "tiny", f"seed={TINY_SEED}", device, batch_size)
    path, published = _resolve(weights)
    model, tokenizer = load_real_clip(arch or ARCH, path, tag_for_defaults=BASE_TAG, device=device)
    label = f"{HUB_ID}/{FILENAME}" if published else weights_label(path)
    return HpsV2Backbone(model, tokenizer, "real", label, device, batch_size)


@register_backbone("hpsv2")
def _hpsv2(profile: str, device: str = "cpu", **options: Any) -> HpsV2Backbone:
    return make_hpsv2(profile, device, **options)

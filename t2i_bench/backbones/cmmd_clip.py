"""CLIP ViT-L/14 @ 336 px for CMMD (Jayasumana et al., CVPR 2024): ``clip_vit_l14_336``.

The published CMMD code embeds images with OpenAI's CLIP ViT-L/14 at 336 px after its own
preprocessing: center-crop the largest square, resize it to 336×336 (bicubic, PIL, with
antialiasing), scale to [0, 1], CLIP mean/std. Here the model is open_clip ``ViT-L-14-336``
with the ``openai`` weights (the same network) and that preprocessing; features are the
un-normalised image projections (768-d); :func:`t2i_bench.metrics.functional.cmmd`
normalises them, as the published code's CLIP does.

``real``: the ``openai`` tag as open_clip reads it (its pretrained config names the hub repo
``timm/vit_large_patch14_clip_336.openai``; open_clip takes ``open_clip_model.safetensors``,
else ``open_clip_pytorch_model.bin``, from the Hugging Face cache, downloading only when the
hub is on), or ``weights=`` / ``T2I_BENCH_CLIP_VIT_L14_336``: a checkpoint file (for ``arch``,
default ViT-L-14-336), an ``open_clip_config.json`` folder, an ``hf-hub:`` id or another tag.
``tiny``: the shared tiny CLIP (:func:`t2i_bench.backbones.clip.build_tiny_clip`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import open_clip
import torch
import torchvision.transforms.functional as TF
from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from PIL import Image

from t2i_bench.backbones._files import expand, first_hub_file, hub_file
from t2i_bench.backbones._torch import TINY_SEED, check_profile, env_source, weights_label
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.backbones.clip import (
    TINY_CLIP_CFG,
    ClipBackbone,
    ClipSource,
    _arch_preprocess,
    _check_arch,
    _dir_source,
    _tag_defaults,
    _tag_file,
    build_tiny_clip,
    load_real_clip,
)

NAME = "clip_vit_l14_336"
VERSION = "1"
ARCH, TAG = "ViT-L-14-336", "openai"
ENV_VAR = "T2I_BENCH_CLIP_VIT_L14_336"
PUBLISHED_FILE = HF_SAFE_WEIGHTS_NAME  # of timm/vit_large_patch14_clip_336.openai (also .bin)
HINT = f"set backbones.{NAME}.weights (or {ENV_VAR}) to a local copy"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def crop_square_resize(image: Image.Image, size: int) -> Image.Image:
    """CMMD's geometry: the centred largest square, resized to ``size`` (bicubic, PIL)."""
    w, h = image.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), resample=Image.Resampling.BICUBIC)


def preprocessing(size: int) -> str:
    mean = ",".join(f"{v:.8g}" for v in CLIP_MEAN)
    std = ",".join(f"{v:.8g}" for v in CLIP_STD)
    return (
        f"RGB; center-crop the largest square, resize to {size}x{size} (bicubic, "
        f"PIL); to [0,1]; normalize mean=({mean}) std=({std})"
    )


class CmmdClipBackbone(ClipBackbone):
    """open_clip CLIP with CMMD's crop-then-resize preprocessing."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, profile: str, weights: str,
                 device: str = "cpu", batch_size: int = 32) -> None:  # fmt: skip
        super().__init__("clip_vit_l14_336", model, tokenizer, profile, weights, device, batch_size)
        size = self.model.visual.image_size
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.preprocessing = preprocessing(self.size)

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = [
            TF.normalize(TF.to_tensor(crop_square_resize(im, self.size)), CLIP_MEAN, CLIP_STD)
            for im in images
        ]
        return torch.stack(pixels).to(self.device)


def resolve_real(weights: str | None = None, arch: str | None = None) -> ClipSource:
    """The files open_clip reads for the real backbone, as :func:`t2i_bench.backbones.clip.
    resolve_real` resolves them: ``weights`` (or ``T2I_BENCH_CLIP_VIT_L14_336``) is a
    checkpoint file for ``arch``, an open_clip model folder, an ``hf-hub:`` id or a tag; by
    default the ``openai`` tag through the Hugging Face cache."""
    source = weights or env_source(ENV_VAR, TAG) or TAG
    arch = arch or ARCH
    if source.startswith("hf-hub:"):
        repo = source[len("hf-hub:") :]
        folder = os.path.dirname(hub_file(repo, HF_CONFIG_NAME, HINT) or "")
        first_hub_file(repo, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME], HINT)
        return _dir_source(folder, source)
    local = source.removeprefix("local-dir:")
    if os.path.isdir(os.path.expanduser(local)):
        return _dir_source(expand(local), weights_label(expand(local)))
    if os.path.isfile(os.path.expanduser(source)):  # a checkpoint: the openai tag's settings
        tag_pp, quick_gelu = _tag_defaults(arch, TAG)
        path = expand(source)
        pp = _arch_preprocess(arch, tag_pp)
        return ClipSource("file", arch, path, (path,), pp, quick_gelu, weights_label(path))
    tag_pp, quick_gelu = _tag_defaults(arch, source)
    path = _tag_file(arch, source, HINT, PUBLISHED_FILE if source == TAG else "")
    pp = _arch_preprocess(arch, tag_pp)
    return ClipSource("file", arch, path, (path,), pp, quick_gelu, f"{arch}/{source}")


def _size(pp: dict[str, Any]) -> int:
    size = pp["size"]
    return int(size if isinstance(size, int) else size[0])


def describe_cmmd_clip(
    profile: str = "tiny", weights: str | None = None, arch: str | None = None
) -> BackboneSpec:
    """The static spec of ``clip_vit_l14_336`` (see :func:`make_cmmd_clip`); loads nothing."""
    check_profile(NAME, profile)
    _check_arch(profile, arch)
    if profile == "tiny":
        size = TINY_CLIP_CFG["vision_cfg"]["image_size"]
        arch_text = f"open_clip CLIP {json.dumps(TINY_CLIP_CFG, sort_keys=True)}"
        return BackboneSpec(
            NAME, "tiny", VERSION, arch_text, preprocessing(size), f"seed={TINY_SEED}"
        )
    src = resolve_real(weights, arch)
    if src.kind == "dir":  # open_clip_config.json is one of the files
        arch_text, settings = f"open_clip model of {HF_CONFIG_NAME}", {}
    else:
        arch_text = f"open_clip {src.arch}" + (" (QuickGELU)" if src.quick_gelu else "")
        settings = {"open_clip_model_cfg": open_clip.get_model_config(src.arch)}
    return BackboneSpec(
        NAME,
        "real",
        VERSION,
        arch_text,
        preprocessing(_size(src.preprocess)),
        src.label,
        src.files,
        settings=settings,
        description=f"open_clip {ARCH} / {TAG} with CMMD's preprocessing",
    )


def make_cmmd_clip(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    arch: str | None = None,
) -> CmmdClipBackbone:
    """Build ``clip_vit_l14_336``; ``weights`` and ``arch`` (``real`` only) as in
    :func:`resolve_real`."""
    check_profile(NAME, profile)
    _check_arch(profile, arch)
    if profile == "tiny":
        tokenizer = open_clip.get_tokenizer(ARCH)
        return CmmdClipBackbone(
            build_tiny_clip(), tokenizer, "tiny", f"seed={TINY_SEED}", device, batch_size
        )
    src = resolve_real(weights, arch)
    model, tokenizer = load_real_clip(src, device="cpu")
    return CmmdClipBackbone(model, tokenizer, "real", src.label, device, batch_size)


@register_backbone(NAME, describe=describe_cmmd_clip)
def _clip_vit_l14_336(profile: str, device: str = "cpu", **options: Any) -> CmmdClipBackbone:
    return make_cmmd_clip(profile, device, **options)

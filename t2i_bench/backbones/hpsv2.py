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

``real``: ``weights=`` / ``T2I_BENCH_HPSV2`` (the checkpoint file), else
``HPS_v2.1_compressed.pt`` of ``xswu/HPSv2`` in the Hugging Face cache (downloaded there only
when the hub is on). That one file is all the loader reads: it holds the whole CLIP, so the
``laion2b_s32b_b79k`` weights the package first loads and then overwrites are not needed; the
architecture is open_clip's bundled ``ViT-H-14`` config (``arch`` overrides it) and the
tokenizer open_clip's bundled BPE vocabulary. Describing reads the checkpoint's tensor shapes
memory-mapped and checks them against the architecture. ``tiny``: a small open_clip CLIP
with ViT-H/14's patch size and GELU, seeded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import open_clip
import torch
import torchvision.transforms.functional as TF
from open_clip.transform import PreprocessCfg
from PIL import Image
from torchvision.transforms import InterpolationMode

from t2i_bench.backbones._files import brief, hub_file, local_file, tensor_shapes
from t2i_bench.backbones._torch import (
    TINY_SEED,
    check_profile,
    env_source,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.backbones.clip import (
    ClipBackbone,
    ClipSource,
    _arch_preprocess,
    _check_arch,
    _tag_defaults,
    load_real_clip,
)
from t2i_bench.errors import BenchError

NAME = "hpsv2"
VERSION = "1"
ENV_VAR = "T2I_BENCH_HPSV2"
HINT = f"set backbones.hpsv2.weights (or {ENV_VAR}) to the checkpoint file"
HUB_ID = "xswu/HPSv2"
FILENAME = "HPS_v2.1_compressed.pt"
CHECKPOINT_URL = f"https://huggingface.co/{HUB_ID}/blob/main/{FILENAME}"
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
        size = image_size(self.model.visual.image_size)
        self.transform = ResizeLongestPad(size)
        self.preprocessing = preprocessing(size)


def image_size(size: int | Sequence[int]) -> int:
    """A square input size (open_clip may store it as ``(h, w)``)."""
    return int(size if isinstance(size, int) else size[0])


def preprocessing(size: int) -> str:
    mean = ",".join(f"{v:.8g}" for v in CLIP_MEAN)
    std = ",".join(f"{v:.8g}" for v in CLIP_STD)
    return (
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


@dataclass(frozen=True)
class HpsSource:
    """Where the real HPS v2.1 checkpoint is, and the architecture it is loaded into."""

    path: str
    arch: str
    model_cfg: dict[str, Any]  # open_clip's config of ``arch``
    label: str


def _model_cfg(arch: str) -> dict[str, Any]:
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise BenchError(f"unknown open_clip architecture {arch!r} (backbones.hpsv2.arch)")
    return cfg


def _check_checkpoint(path: str, arch: str, cfg: dict[str, Any]) -> None:
    """The checkpoint's tensor shapes (memory-mapped) fit ``arch``: one line naming the file
    when it is truncated, foreign or of another architecture."""
    try:
        shapes = tensor_shapes(path)
    except Exception as exc:
        raise BenchError(
            f"cannot read the HPS v2 checkpoint ({brief(exc)}); it must be a state dict such "
            f"as {CHECKPOINT_URL}: download it again",
            path,
        ) from exc
    shapes = {k.removeprefix("module."): v for k, v in shapes.items()}  # as open_clip strips
    vision = cfg.get("vision_cfg", {})
    if "timm_model_name" in vision or "width" not in vision or "patch_size" not in vision:
        return  # not open_clip's own ViT: open_clip checks it when loading
    patch = int(vision["patch_size"])
    want = {"visual.conv1.weight": (int(vision["width"]), 3, patch, patch)}
    text = cfg.get("text_cfg", {})
    if "width" in text and "hf_model_name" not in text:
        want["text_projection"] = (int(text["width"]), int(cfg["embed_dim"]))
    for key, shape in want.items():
        if key not in shapes:
            raise BenchError(f"not an open_clip CLIP state dict (no {key})", path)
        if shapes[key] != shape:
            raise BenchError(
                f"checkpoint does not fit open_clip {arch}: {key} is {shapes[key]}, {arch} has "
                f"{shape} (backbones.hpsv2.arch names the architecture)",
                path,
            )


def resolve_real(weights: str | None = None, arch: str | None = None) -> HpsSource:
    """The checkpoint (``weights``, ``T2I_BENCH_HPSV2``, else the published file in the Hugging
    Face cache) and the open_clip architecture (``arch``, default ViT-H-14), checked."""
    source = weights or env_source(ENV_VAR, None)
    if source:
        path = local_file(source, "HPS v2 checkpoint", HINT)
        label = weights_label(path)
    else:
        path = hub_file(HUB_ID, FILENAME, HINT) or ""
        label = f"{HUB_ID}/{FILENAME}"
    arch = arch or ARCH
    cfg = _model_cfg(arch)
    _check_checkpoint(path, arch, cfg)
    return HpsSource(path, arch, cfg, label)


def _architecture(arch: str, quick_gelu: bool) -> str:
    return f"open_clip {arch}" + (" (QuickGELU)" if quick_gelu else "")


def describe_hpsv2(
    profile: str = "tiny", weights: str | None = None, arch: str | None = None
) -> BackboneSpec:
    """The static spec of ``hpsv2`` (see :func:`make_hpsv2`); loads nothing."""
    check_profile(NAME, profile)
    _check_arch(profile, arch)
    if profile == "tiny":
        size = image_size(TINY_CFG["vision_cfg"]["image_size"])
        arch_text = f"open_clip CLIP {json.dumps(TINY_CFG, sort_keys=True)}"
        return BackboneSpec(
            NAME, "tiny", VERSION, arch_text, preprocessing(size), f"seed={TINY_SEED}"
        )
    src = resolve_real(weights, arch)
    _, quick_gelu = _tag_defaults(src.arch, BASE_TAG)
    return BackboneSpec(
        NAME,
        "real",
        VERSION,
        _architecture(src.arch, quick_gelu),
        preprocessing(image_size(src.model_cfg["vision_cfg"]["image_size"])),
        src.label,
        (src.path,),
        settings={"open_clip_model_cfg": src.model_cfg},
        description=f"{HUB_ID}/{FILENAME}",
    )


def make_hpsv2(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    arch: str | None = None,
) -> HpsV2Backbone:
    """Build ``hpsv2``; ``arch`` overrides the open_clip architecture (tests, small files)."""
    check_profile(NAME, profile)
    _check_arch(profile, arch)
    if profile == "tiny":
        model = build_tiny_hpsv2()
        tokenizer = open_clip.get_tokenizer(ARCH)
        return HpsV2Backbone(model, tokenizer, "tiny", f"seed={TINY_SEED}", device, batch_size)
    src = resolve_real(weights, arch)
    tag_pp, quick_gelu = _tag_defaults(src.arch, BASE_TAG)
    pp = _arch_preprocess(src.arch, tag_pp)
    clip_src = ClipSource("file", src.arch, src.path, (src.path,), pp, quick_gelu, src.label)
    model, tokenizer = load_real_clip(clip_src, device="cpu")
    return HpsV2Backbone(model, tokenizer, "real", src.label, device, batch_size)


@register_backbone(NAME, describe=describe_hpsv2)
def _hpsv2(profile: str, device: str = "cpu", **options: Any) -> HpsV2Backbone:
    return make_hpsv2(profile, device, **options)

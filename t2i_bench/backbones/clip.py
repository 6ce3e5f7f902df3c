"""CLIP image/text backbones on open_clip.

- ``clip_vit_b32``: open_clip ``ViT-B-32`` with the ``openai`` weights (DreamBench convention).
- ``clip_vit_l14``: open_clip ``ViT-L-14`` with ``datacomp_xl_s13b_b90k`` (LyCORIS paper).

Profile ``real`` loads the published weights through open_clip (offline: the hub cache, a
local checkpoint file, or a local ``open_clip_config.json`` directory). Profile ``tiny`` builds
a small open_clip ``CLIP`` (ViT vision tower + text transformer) from :data:`TINY_CLIP_CFG`
with a fixed seed, open_clip's eval transform for its image size and open_clip's bundled
BPE tokenizer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    batched_forward,
    check_profile,
    env_source,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import register_backbone
from t2i_bench.errors import BenchError

TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@dataclass(frozen=True)
class ClipSpec:
    name: str
    arch: str  # open_clip model name
    tag: str  # open_clip pretrained tag
    env_var: str  # environment variable that may point at local weights


SPECS = {
    "clip_vit_b32": ClipSpec("clip_vit_b32", "ViT-B-32", "openai", "T2I_BENCH_CLIP_VIT_B32"),
    "clip_vit_l14": ClipSpec(
        "clip_vit_l14", "ViT-L-14", "datacomp_xl_s13b_b90k", "T2I_BENCH_CLIP_VIT_L14"
    ),
    # OpenAI's ViT-L/14: what the LAION aesthetic predictor v2 was trained on
    "clip_vit_l14_openai": ClipSpec(
        "clip_vit_l14_openai", "ViT-L-14", "openai", "T2I_BENCH_CLIP_VIT_L14_OPENAI"
    ),
}


def describe_preprocess(cfg: dict[str, Any]) -> str:
    """A precise, stable description of open_clip's eval transform for ``cfg``."""
    size = cfg["size"]
    if not isinstance(size, int):  # open_clip stores (h, w); a square size prints as one int
        size = size[0] if len(set(size)) == 1 else "x".join(str(s) for s in size)
    mode = cfg.get("resize_mode", "shortest")
    interp = cfg.get("interpolation", "bicubic")
    if mode == "shortest":
        geom = f"resize shortest side to {size} ({interp}), center crop {size}"
    elif mode == "longest":
        geom = f"resize longest side to {size} ({interp}), center pad {size}"
    else:
        geom = f"resize (squash) to {size} ({interp})"
    mean = ",".join(f"{v:.8g}" for v in cfg["mean"])
    std = ",".join(f"{v:.8g}" for v in cfg["std"])
    return f"RGB; {geom}; to [0,1]; normalize mean=({mean}) std=({std})"


def build_tiny_clip(seed: int = TINY_SEED) -> torch.nn.Module:
    """The tiny open_clip CLIP, deterministically initialised from ``seed``."""
    with seeded(seed):
        model = open_clip.model.CLIP(**TINY_CLIP_CFG)
    pp = {**vars(PreprocessCfg()), "size": TINY_CLIP_CFG["vision_cfg"]["image_size"]}
    open_clip.model.set_model_preprocess_cfg(model, pp)
    return model.eval()


def load_real_clip(
    arch: str,
    source: str,
    tag_for_defaults: str | None = None,
    device: str = "cpu",
) -> tuple[torch.nn.Module, Any]:
    """Load an open_clip model and its tokenizer from a tag, checkpoint file or directory.

    Works offline from a tag, checkpoint file or directory.

    ``source`` is an open_clip pretrained tag (resolved through the hub cache), a checkpoint
    file (``.bin``/``.pt``/``.safetensors`` state dict, optionally under ``state_dict``), a
    directory holding ``open_clip_config.json`` + weights (the hub repo layout), or an
    ``hf-hub:``/``local-dir:`` id. For a tag or a file, ``quick_gelu`` and the preprocessing
    come from the pretrained config of ``tag_for_defaults`` (default: ``source`` as a tag).
    """
    src = os.path.expanduser(source)
    try:
        if src.startswith(("hf-hub:", "local-dir:")) or os.path.isdir(src):
            name = src if src.startswith(("hf-hub:", "local-dir:")) else f"local-dir:{src}"
            model = open_clip.create_model(name, device=device, require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(name)
        else:
            tag_cfg = open_clip.get_pretrained_cfg(arch, tag_for_defaults or source) or {}
            pp = {
                k: tag_cfg[k]
                for k in ("mean", "std", "interpolation", "resize_mode")
                if k in tag_cfg
            }
            model = open_clip.create_model(
                arch,
                pretrained=src,
                device=device,
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                force_preprocess_cfg=pp,
                require_pretrained=True,
            )
            tokenizer = open_clip.get_tokenizer(arch)
    except Exception as exc:  # open_clip raises RuntimeError/FileNotFoundError/ValueError
        raise BenchError(
            f"cannot load open_clip {arch} weights from {source!r} ({exc}); download them into "
            "the Hugging Face cache or point the backbone at a local checkpoint"
        ) from exc
    return model.eval(), tokenizer


class ClipBackbone(TorchBackbone):
    """An open_clip CLIP model embedding images and texts (un-normalised projections).

    ``forward_calls`` counts batched image forwards; ``text_forward_calls`` text forwards.
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        tokenizer: Any,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name = name
        self.profile = profile
        self.weights = weights
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        cfg = dict(self.model.visual.preprocess_cfg)
        self.transform = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
        self.preprocessing = describe_preprocess(cfg)
        self.feature_dim = int(self.model.text_projection.shape[1])
        self.text_forward_calls = 0

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images]).to(self.device)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _count_text(self) -> None:
        self.text_forward_calls += 1

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, d) float32 array of text features (not normalised)."""
        if len(texts) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return batched_forward(
            list(texts),
            self.batch_size,
            lambda chunk: self.tokenizer(list(chunk)).to(self.device),
            self.model.encode_text,
            self._count_text,
        )


def make_clip(
    name: str,
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    arch: str | None = None,
) -> ClipBackbone:
    """Build the CLIP backbone ``name``.

    ``weights`` (``real`` only) overrides the published tag: a checkpoint file, a directory, or
    an ``hf-hub:`` id; by default the spec's environment variable, then the published tag.
    ``arch`` overrides the open_clip architecture (tests use it with small checkpoints).
    """
    spec = SPECS[name]
    check_profile(name, profile)
    if profile == "tiny":
        model = build_tiny_clip()
        return ClipBackbone(
            name,
            model,
            open_clip.get_tokenizer(spec.arch),
            "tiny",
            f"seed={TINY_SEED}",
            device,
            batch_size,
        )
    source = weights or env_source(spec.env_var, spec.tag) or spec.tag
    arch = arch or spec.arch
    model, tokenizer = load_real_clip(arch, source, tag_for_defaults=spec.tag, device=device)
    label = f"{spec.arch}/{source}" if source == spec.tag else weights_label(source)
    return ClipBackbone(name, model, tokenizer, "real", label, device, batch_size)


@register_backbone("clip_vit_b32")
def _clip_vit_b32(profile: str, device: str = "cpu", **options: Any) -> ClipBackbone:
    return make_clip("clip_vit_b32", profile, device, **options)


@register_backbone("clip_vit_l14")
def _clip_vit_l14(profile: str, device: str = "cpu", **options: Any) -> ClipBackbone:
    return make_clip("clip_vit_l14", profile, device, **options)


@register_backbone("clip_vit_l14_openai")
def _clip_vit_l14_openai(profile: str, device: str = "cpu", **options: Any) -> ClipBackbone:
    return make_clip("clip_vit_l14_openai", profile, device, **options)

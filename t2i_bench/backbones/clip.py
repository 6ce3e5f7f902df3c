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

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from open_clip.factory import _find_checkpoint_in_dir
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image

from t2i_bench.backbones._files import brief, expand, first_hub_file, hub_file
from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    batched_forward,
    check_profile,
    env_source,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.errors import BenchError

VERSION = "1"
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
    published_file: str  # the weights file of the tag's hub repo (main branch)


SPECS = {
    "clip_vit_b32": ClipSpec(
        "clip_vit_b32",
        "ViT-B-32",
        "openai",
        "T2I_BENCH_CLIP_VIT_B32",
        "open_clip_model.safetensors",  # timm/vit_base_patch32_clip_224.openai
    ),
    "clip_vit_l14": ClipSpec(
        "clip_vit_l14",
        "ViT-L-14",
        "datacomp_xl_s13b_b90k",
        "T2I_BENCH_CLIP_VIT_L14",
        "open_clip_pytorch_model.bin",  # laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K
    ),
    # OpenAI's ViT-L/14: what the LAION aesthetic predictor v2 was trained on
    "clip_vit_l14_openai": ClipSpec(
        "clip_vit_l14_openai",
        "ViT-L-14",
        "openai",
        "T2I_BENCH_CLIP_VIT_L14_OPENAI",
        "open_clip_model.safetensors",  # timm/vit_large_patch14_clip_224.openai
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


@dataclass(frozen=True)
class ClipSource:
    """Where a real CLIP's files are, resolved without loading it."""

    kind: str  # "dir" (open_clip_config.json + weights) or "file" (a checkpoint for ``arch``)
    arch: str  # open_clip architecture (for "file")
    path: str  # the folder ("dir") or the checkpoint file ("file")
    files: tuple[str, ...]  # every file the loader reads
    preprocess: dict[str, Any]  # open_clip preprocess cfg the loaded model will carry
    quick_gelu: bool
    label: str


def _hint(spec: ClipSpec) -> str:
    return f"set backbones.clip.weights (or {spec.env_var}) to a local copy"


def _tag_defaults(arch: str, tag: str) -> tuple[dict[str, Any], bool]:
    """The preprocess overrides and QuickGELU setting of the published tag ``tag``."""
    cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
    pp = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    return pp, bool(cfg.get("quick_gelu", False))


def _arch_preprocess(arch: str, overrides: dict[str, Any]) -> dict[str, Any]:
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise BenchError(f"unknown open_clip architecture {arch!r}")
    size = model_cfg.get("vision_cfg", {}).get("image_size", PreprocessCfg().size)
    return merge_preprocess_dict({**vars(PreprocessCfg()), "size": size}, overrides)


def _tag_file(arch: str, tag: str, hint: str, ask_for: str = "") -> str:
    """The checkpoint open_clip reads for a published tag (hub repo preferred, as it does)."""
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise BenchError(
            f"{tag!r} is neither an open_clip {arch} pretrained tag nor an existing path ({hint})"
        )
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        return first_hub_file(repo, names, hint, [ask_for] if ask_for else [])
    url = cfg["url"]  # open_clip's own download cache for URL-only tags
    path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
    if not os.path.isfile(path):
        raise BenchError(f"missing {os.path.basename(url)}: download {url} to {path}, or {hint}")
    return path


def _dir_source(folder: str, label: str) -> ClipSource:
    config_path = os.path.join(folder, HF_CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise BenchError(f"not an open_clip model folder (no {HF_CONFIG_NAME})", folder)
    with open(config_path, encoding="utf-8") as f:
        cfg = json.load(f)
    if "model_cfg" not in cfg:
        raise BenchError("open_clip_config.json has no model_cfg", config_path)
    weights = _find_checkpoint_in_dir(Path(folder))
    if weights is None:
        raise BenchError(f"no open_clip weights beside {HF_CONFIG_NAME}", folder)
    size = cfg["model_cfg"].get("vision_cfg", {}).get("image_size", PreprocessCfg().size)
    pp = merge_preprocess_dict(vars(PreprocessCfg()), cfg.get("preprocess_cfg", {}))
    pp["size"] = size
    return ClipSource("dir", "", folder, (config_path, weights), pp, False, label)


def resolve_real(name: str, weights: str | None = None, arch: str | None = None) -> ClipSource:
    """The files and settings of the real backbone ``name``: ``weights`` (or the spec's
    environment variable) is a checkpoint file, an open_clip model folder, an ``hf-hub:`` id
    or a pretrained tag; by default the published tag, through the Hugging Face cache."""
    spec = SPECS[name]
    hint = _hint(spec)
    source = weights or env_source(spec.env_var, spec.tag) or spec.tag
    arch = arch or spec.arch
    if source.startswith("hf-hub:"):
        repo = source[len("hf-hub:") :]
        folder = os.path.dirname(hub_file(repo, HF_CONFIG_NAME, hint) or "")
        first_hub_file(repo, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME], hint)
        return _dir_source(folder, source)
    local = source[len("local-dir:") :] if source.startswith("local-dir:") else source
    if os.path.isdir(os.path.expanduser(local)):
        return _dir_source(expand(local), weights_label(expand(local)))
    tag_pp, quick_gelu = _tag_defaults(arch, spec.tag)
    pp = _arch_preprocess(arch, tag_pp)
    if os.path.isfile(os.path.expanduser(source)):
        path = expand(source)
        return ClipSource("file", arch, path, (path,), pp, quick_gelu, weights_label(path))
    tag_pp, quick_gelu = _tag_defaults(arch, source)
    published = spec.published_file if source == spec.tag else ""
    path = _tag_file(arch, source, hint, published)
    pp = _arch_preprocess(arch, tag_pp)
    return ClipSource("file", arch, path, (path,), pp, quick_gelu, f"{arch}/{source}")


def tiny_preprocess() -> dict[str, Any]:
    return {**vars(PreprocessCfg()), "size": TINY_CLIP_CFG["vision_cfg"]["image_size"]}


def load_real_clip(src: ClipSource, device: str = "cpu") -> tuple[torch.nn.Module, Any]:
    """Load the open_clip model and tokenizer of a resolved source (exactly its files)."""
    try:
        if src.kind == "dir":
            model = open_clip.create_model(
                f"local-dir:{src.path}", device=device, require_pretrained=True
            )
            tokenizer = open_clip.get_tokenizer(f"local-dir:{src.path}")
        else:
            model = open_clip.create_model(
                src.arch,
                pretrained=src.path,
                device=device,
                force_quick_gelu=src.quick_gelu,
                force_preprocess_cfg={
                    k: src.preprocess[k] for k in ("mean", "std", "interpolation", "resize_mode")
                },
                require_pretrained=True,
            )
            tokenizer = open_clip.get_tokenizer(src.arch)
    except Exception as exc:  # open_clip raises RuntimeError/FileNotFoundError/ValueError
        raise BenchError(
            f"cannot load open_clip {src.arch or 'model'} weights ({brief(exc, 300)})",
            src.path,
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

    def _prepare_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.device)

    def _forward_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, d) float32 array of text features (not normalised)."""
        if len(texts) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return batched_forward(
            list(texts), self.batch_size, self._prepare_texts, self._forward_texts, self._count_text
        )


def _check_arch(profile: str, arch: str | None) -> None:
    if arch is not None and profile == "tiny":
        raise BenchError("the tiny CLIP has a fixed architecture; 'arch' applies to 'real' only")


def describe_clip(
    name: str,
    profile: str = "tiny",
    weights: str | None = None,
    arch: str | None = None,
) -> BackboneSpec:
    """The static spec of the CLIP backbone ``name`` (see :func:`make_clip`); loads nothing."""
    spec = SPECS[name]
    check_profile(name, profile)
    _check_arch(profile, arch)
    if profile == "tiny":
        return BackboneSpec(
            name,
            "tiny",
            VERSION,
            f"open_clip CLIP {json.dumps(TINY_CLIP_CFG, sort_keys=True)}",
            describe_preprocess(tiny_preprocess()),
            f"seed={TINY_SEED}",
        )
    src = resolve_real(name, weights, arch)
    architecture = (
        f"open_clip {src.arch}" + (" (QuickGELU)" if src.quick_gelu else "")
        if src.kind == "file"
        else f"open_clip model of {HF_CONFIG_NAME}"
    )
    return BackboneSpec(
        name,
        "real",
        VERSION,
        architecture,
        describe_preprocess(src.preprocess),
        src.label,
        src.files,
        description=f"open_clip {spec.arch} / {spec.tag}",
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
    _check_arch(profile, arch)
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
    src = resolve_real(name, weights, arch)
    model, tokenizer = load_real_clip(src, device="cpu")
    return ClipBackbone(name, model, tokenizer, "real", src.label, device, batch_size)


for _name in SPECS:
    register_backbone(_name, describe=functools.partial(describe_clip, _name))(
        functools.partial(make_clip, _name)
    )

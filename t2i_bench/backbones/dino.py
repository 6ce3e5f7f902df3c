"""DINO image backbones on transformers: CLS-token features.

- ``dinov2_vitl14``: DINOv2 ViT-L/14 (``facebook/dinov2-large``, ``Dinov2Model``), LyCORIS paper.
- ``dino_vits16``: DINO ViT-S/16 (``facebook/dino-vits16``, ``ViTModel``), DreamBench.

``real`` loads the model and its image processor with ``from_pretrained`` from a hub id (the
cache, offline) or a local directory (``weights=`` or the spec's environment variable).
``tiny`` builds the same classes from small configs with a fixed seed, with the published
processor's class and conventions at a small size.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    BitImageProcessor,
    Dinov2Config,
    Dinov2Model,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

from t2i_bench.backbones._files import (
    expand,
    hf_model_folder,
    hf_weight_files,
    hub_snapshot,
    is_local,
)
from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    check_profile,
    describe_hf_processor,
    env_source,
    hf_load,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.errors import BenchError

VERSION = "1"
PROCESSOR_CONFIG = "preprocessor_config.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DinoSpec:
    name: str
    hub_id: str
    env_var: str
    model_cls: type
    config_cls: type
    tiny_config: dict[str, Any]
    published_weights: str  # the weight file of the hub repo's main branch


SPECS = {
    "dinov2_vitl14": DinoSpec(
        "dinov2_vitl14",
        "facebook/dinov2-large",
        "T2I_BENCH_DINOV2_VITL14",
        Dinov2Model,
        Dinov2Config,
        dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            mlp_ratio=2,
            patch_size=14,
            image_size=56,
        ),
        "model.safetensors",
    ),
    "dino_vits16": DinoSpec(
        "dino_vits16",
        "facebook/dino-vits16",
        "T2I_BENCH_DINO_VITS16",
        ViTModel,
        ViTConfig,
        dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            patch_size=16,
            image_size=64,
            qkv_bias=True,
        ),
        "pytorch_model.bin",  # main has no safetensors (only an open PR does)
    ),
}


def tiny_processor(name: str) -> Any:
    """The published processor class and conventions, at the tiny size."""
    if name == "dinov2_vitl14":  # published: shortest edge 256 bicubic, center crop 224
        return BitImageProcessor(
            size={"shortest_edge": 64},
            crop_size={"height": 56, "width": 56},
            resample=3,
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
            do_convert_rgb=True,
        )
    # published dino-vits16: resize to 224x224 bilinear, no crop
    return ViTImageProcessor(
        size={"height": 64, "width": 64},
        resample=2,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )


def build_tiny_dino(name: str, seed: int = TINY_SEED) -> torch.nn.Module:
    """The tiny model of ``name``'s class, deterministically initialised from ``seed``."""
    spec = SPECS[name]
    config = spec.config_cls(**spec.tiny_config)
    kwargs = {"add_pooling_layer": False} if spec.model_cls is ViTModel else {}
    with seeded(seed):
        model = spec.model_cls(config, **kwargs)
    return model.eval()


class DinoBackbone(TorchBackbone):
    """CLS-token features (after the final layer norm) of a DINO/DINOv2 ViT."""

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        processor: Any,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name, self.profile, self.weights = name, profile, weights
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.preprocessing = describe_hf_processor(processor)
        self.feature_dim = int(model.config.hidden_size)

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        return pixels.to(self.device)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).last_hidden_state[:, 0]


@dataclass(frozen=True)
class DinoSource:
    """Where a real DINO's files are, resolved without loading it."""

    model_folder: str
    processor_folder: str
    files: tuple[str, ...]
    label: str


def _hint(spec: DinoSpec) -> str:
    return f"set backbones.dino.weights (or {spec.env_var}) to a save_pretrained folder"


def _processor_folder(source: str, hint: str) -> str:
    if is_local(source):
        folder = expand(source)
        if not os.path.isfile(os.path.join(folder, PROCESSOR_CONFIG)):
            raise BenchError(f"no {PROCESSOR_CONFIG} (the image processor) in this folder", folder)
        return folder
    return hub_snapshot(source, PROCESSOR_CONFIG, hint)


def resolve_real(name: str, weights: str | None = None, processor: str | None = None) -> DinoSource:
    """The model folder (a ``save_pretrained`` folder, or a hub id's cache snapshot) and the
    image-processor folder (``processor``, default: the model's own) of ``name``."""
    spec = SPECS[name]
    hint = _hint(spec)
    source = weights or env_source(spec.env_var, spec.hub_id) or spec.hub_id
    with_files = (spec.published_weights,) + (() if processor else (PROCESSOR_CONFIG,))
    folder = hf_model_folder(source, f"{name} model", hint, with_files)
    proc_folder = _processor_folder(processor or source, hint)
    files = (
        os.path.join(folder, "config.json"),
        *hf_weight_files(folder, f"{name} model", hint),
        os.path.join(proc_folder, PROCESSOR_CONFIG),
    )
    label = source if source == spec.hub_id else weights_label(folder)
    if processor:
        label += f"+processor:{weights_label(proc_folder)}"
    return DinoSource(folder, proc_folder, files, label)


def describe_dino(
    name: str, profile: str = "tiny", weights: str | None = None, processor: str | None = None
) -> BackboneSpec:
    """The static spec of ``name``: the processor's settings come from its JSON file."""
    spec = SPECS[name]
    check_profile(name, profile)
    if profile == "tiny":
        config = json.dumps(spec.tiny_config, sort_keys=True)
        arch = f"transformers {spec.model_cls.__name__} {config}"
        preprocessing = describe_hf_processor(tiny_processor(name))
        return BackboneSpec(name, "tiny", VERSION, arch, preprocessing, f"seed={TINY_SEED}")
    src = resolve_real(name, weights, processor)
    proc = hf_load(AutoImageProcessor.from_pretrained, src.processor_folder, f"{name} processor")
    return BackboneSpec(
        name,
        "real",
        VERSION,
        f"transformers {spec.model_cls.__name__} (config.json), CLS token",
        describe_hf_processor(proc),
        src.label,
        src.files,
        description=spec.hub_id,
    )


def make_dino(
    name: str,
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    processor: str | None = None,
) -> DinoBackbone:
    """Build ``name``; ``weights`` (``real``) is a hub id or a ``save_pretrained`` folder,
    ``processor`` a folder (or hub id) holding the image processor (default: the model's)."""
    spec = SPECS[name]
    check_profile(name, profile)
    if profile == "tiny":
        return DinoBackbone(
            name,
            build_tiny_dino(name),
            tiny_processor(name),
            "tiny",
            f"seed={TINY_SEED}",
            device,
            batch_size,
        )
    src = resolve_real(name, weights, processor)
    kwargs = {"add_pooling_layer": False} if spec.model_cls is ViTModel else {}
    model = hf_load(spec.model_cls.from_pretrained, src.model_folder, f"{name} model", **kwargs)
    proc = hf_load(AutoImageProcessor.from_pretrained, src.processor_folder, f"{name} processor")
    return DinoBackbone(name, model, proc, "real", src.label, device, batch_size)  # type: ignore[arg-type]


for _name in SPECS:
    register_backbone(_name, describe=functools.partial(describe_dino, _name))(
        functools.partial(make_dino, _name)
    )

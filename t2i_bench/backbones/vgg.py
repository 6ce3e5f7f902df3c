"""VGG-19 style features for the Gram style loss: ``vgg19_gram``.

Each image is embedded as its normalised Gram matrices G_l = F_l·F_lᵀ/(c·h·w) of the
relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 activations (the rectified outputs of conv1_1 …
conv5_1, as in Gatys et al.), flattened as upper triangles with off-diagonal entries scaled by
√2 (:func:`t2i_bench.metrics.functional.gram_embedding`), so the style loss between two
images is the squared distance of their embeddings.

``real``: torchvision ``vgg19`` ImageNet weights (``vgg19-dcbb9e9d.pth``: ``weights=``,
``T2I_BENCH_VGG19_WEIGHTS`` or the torch hub cache); resize shortest side 256 (bilinear),
center crop 256, ImageNet normalisation. ``tiny``: the VGG-19
layer layout at 1/8 width (8…64 channels) built by torchvision's ``make_layers`` with
torchvision's VGG initialisation (Kaiming-normal fan-out convs, zero biases), seeded, on 64x64
crops. Only ``features`` is built or loaded (the 100M-parameter classifier is never used).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.models.vgg import make_layers
from torchvision.transforms import v2 as T

from t2i_bench.backbones._files import brief, local_file, torch_hub_file
from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    check_profile,
    env_source,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.errors import BenchError

# VGG-19 ("E") layout; indices into .features of the ReLU after conv1_1, conv2_1, … conv5_1
VGG19_CFG: list[int | str] = (
    [64, 64, "M", 128, 128, "M"] + [256] * 4 + ["M"] + ([512] * 4 + ["M"]) * 2
)
TINY_CFG: list[int | str] = [v if v == "M" else max(8, int(v) // 8) for v in VGG19_CFG]
STYLE_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
NAME = "vgg19_gram"
VERSION = "1"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REAL_SIZE, TINY_SIZE = 256, 64


def build_tiny_vgg(seed: int = TINY_SEED) -> torch.nn.Sequential:
    """VGG-19-layout ``features`` at 1/8 width, initialised as torchvision's VGG does."""
    with seeded(seed):
        features = make_layers(TINY_CFG)
        for m in features.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                torch.nn.init.zeros_(m.bias)
    return features.eval()


HINT = "set backbones.vgg.weights (or T2I_BENCH_VGG19_WEIGHTS) to a local copy"


def resolve_real(weights: str | None = None) -> str:
    """The torchvision VGG-19 checkpoint: ``weights``, the environment variable, else the
    torch hub cache (downloaded when online)."""
    path = weights or env_source("T2I_BENCH_VGG19_WEIGHTS", None)
    if path:
        return local_file(path, "torchvision VGG-19 weights", HINT)
    return torch_hub_file(VGG19_FILE, VGG19_URL, HINT)


def _label(path: str) -> str:
    return "vgg19-imagenet1k-v1" if os.path.basename(path) == VGG19_FILE else weights_label(path)


def load_real_vgg(
    weights: str | None = None, cfg: list[int | str] | None = None
) -> tuple[torch.nn.Sequential, str]:
    """``features`` of a torchvision VGG-19 checkpoint (``features.*`` keys; others ignored).

    ``cfg`` overrides the layer layout (tests load small checkpoints in the same format).
    """
    path = resolve_real(weights)
    features = make_layers(cfg or VGG19_CFG)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        sd = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
        features.load_state_dict(sd)
    except Exception as exc:
        raise BenchError(f"cannot load VGG-19 weights ({brief(exc)})", path) from exc
    return features.eval(), _label(path)


def preprocessing(size: int) -> str:
    return (
        f"RGB; resize shortest side to {size} (bilinear, antialias, on uint8); center crop "
        f"{size}; to [0,1]; normalize mean={IMAGENET_MEAN} std={IMAGENET_STD}; Gram of "
        f"{','.join(STYLE_LAYERS)} / (c*h*w), upper triangle, off-diagonal x sqrt(2)"
    )


def describe_vgg(
    profile: str = "tiny",
    weights: str | None = None,
    size: int | None = None,
    cfg: list[int | str] | None = None,
) -> BackboneSpec:
    """The static spec of ``vgg19_gram``: loads nothing."""
    check_profile(NAME, profile)
    if profile == "tiny":
        arch = f"VGG features {TINY_CFG}"
        return BackboneSpec(
            NAME,
            "tiny",
            VERSION,
            arch,
            preprocessing(size or TINY_SIZE),
            f"seed={TINY_SEED}",
            transient=True,
        )
    path = resolve_real(weights)
    arch = f"VGG features {cfg or VGG19_CFG}"
    return BackboneSpec(
        NAME,
        "real",
        VERSION,
        arch,
        preprocessing(size or REAL_SIZE),
        _label(path),
        (path,),
        transient=True,  # Gram upper triangles: 1.22 MB per image
    )


class GramFeatures(torch.nn.Module):
    """VGG features up to relu5_1 -> Gram embeddings (float64 Gram, float32 out)."""

    def __init__(self, features: torch.nn.Sequential) -> None:
        super().__init__()
        last = max(STYLE_LAYERS.values())
        self.features = torch.nn.Sequential(*list(features.children())[: last + 1])
        self.taps = sorted(STYLE_LAYERS.values())

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for f in self.activations(x):
            b, c, h, w = f.shape
            flat = f.double().reshape(b, c, h * w)
            gram = flat @ flat.transpose(1, 2) / (c * h * w)
            iu = torch.triu_indices(c, c, device=gram.device)
            scale = torch.where(iu[0] == iu[1], 1.0, 2.0**0.5).to(gram)
            parts.append(gram[:, iu[0], iu[1]] * scale)
        return torch.cat(parts, dim=1).float()


class VGGGramBackbone(TorchBackbone):
    """Gram-matrix embeddings; style loss(a, b) = ||e_a - e_b||²."""

    def __init__(
        self,
        features: torch.nn.Sequential,
        size: int,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name, self.profile, self.weights = "vgg19_gram", profile, weights
        self.net = GramFeatures(features).to(self.device).eval()
        self.size = size
        self.transform = T.Compose(
            [
                T.PILToTensor(),
                T.Resize(size, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                T.CenterCrop(size),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
        self.preprocessing = preprocessing(size)
        channels = [int(features[i - 1].out_channels) for i in sorted(STYLE_LAYERS.values())]
        self.feature_dim = sum(c * (c + 1) // 2 for c in channels)

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images]).to(self.device)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)

    def style_activations(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """The raw relu*_1 activations (for checks against a direct Gram computation)."""
        with torch.inference_mode():
            acts = self.net.activations(self._prepare_images(list(images)))
        return [a.double().cpu().numpy() for a in acts]


def make_vgg(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    size: int | None = None,
    cfg: list[int | str] | None = None,
) -> VGGGramBackbone:
    """``size`` overrides the crop size (256 real, 64 tiny); ``cfg`` the real layer layout."""
    check_profile("vgg19_gram", profile)
    if profile == "tiny":
        return VGGGramBackbone(
            build_tiny_vgg(), size or TINY_SIZE, "tiny", f"seed={TINY_SEED}", device, batch_size
        )
    vgg, label = load_real_vgg(weights, cfg)
    return VGGGramBackbone(vgg, size or REAL_SIZE, "real", label, device, batch_size)


@register_backbone(NAME, describe=describe_vgg)
def _vgg19_gram(profile: str, device: str = "cpu", **options: Any) -> VGGGramBackbone:
    return make_vgg(profile, device, **options)

"""LPIPS (AlexNet, v0.1 linear layers) as an embedding backbone: ``lpips_alex``.

LPIPS(x, y) = Σ_l mean_hw Σ_c w_lc (x̂_lchw - ŷ_lchw)², with x̂ the channel-unit-normalised
AlexNet relu1…relu5 activations of the scaled input and w_l ≥ 0 the v0.1 linear weights.
Because the weights are non-negative, it is exactly ||e(x) - e(y)||² for the per-image vector
e = concat_l sqrt(w_lc / (H_l·W_l)) · x̂_l, which is what :meth:`embed_images` returns: each
image is embedded once and every pairwise LPIPS is a squared distance
(:func:`t2i_bench.metrics.functional.lpips_diversity`).

``real``: torchvision's ImageNet AlexNet (``alexnet-owt-7be5be79.pth``: ``alexnet_weights=``,
``T2I_BENCH_ALEXNET_WEIGHTS`` or the torch hub cache) and the v0.1 ``alex.pth`` linear
layers (``weights=``, ``T2I_BENCH_LPIPS_WEIGHTS`` or the copy bundled with the ``lpips``
package). ``tiny``: the same AlexNet features seeded-random, seeded |N(0,1)|/C linear
weights, 64x64 input. Only AlexNet's ``features`` are built or loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
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

CHANNELS = (64, 192, 384, 256, 256)
SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))  # AlexNet features -> relu1..relu5
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS ScalingLayer constants (inputs in [-1, 1])
SCALE = (0.458, 0.448, 0.450)
NAME = "lpips_alex"
VERSION = "1"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
REAL_SIZE, TINY_SIZE = 256, 64


class LPIPSNet(torch.nn.Module):
    """AlexNet feature slices + non-negative per-channel LPIPS weights."""

    def __init__(self, features: torch.nn.Sequential, lin: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.slices = torch.nn.ModuleList(
            torch.nn.Sequential(*[features[i] for i in range(a, b)]) for a, b in SLICES
        )
        for i, w in enumerate(lin):
            w = w.detach().reshape(-1).float()
            if w.numel() != CHANNELS[i] or bool((w < 0).any()):
                raise BenchError(f"LPIPS linear layer {i}: need {CHANNELS[i]} non-negative weights")
            self.register_buffer(f"w{i}", w)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def layer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Channel-normalised relu1..relu5 activations of ``x`` in [-1, 1] (b, 3, h, w)."""
        h = (x - self.shift) / self.scale
        out = []
        for s in self.slices:
            h = s(h)
            out.append(h / (torch.sqrt((h * h).sum(dim=1, keepdim=True)) + 1e-10))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, D) embeddings whose squared distances are LPIPS."""
        parts = []
        for i, f in enumerate(self.layer_features(x)):
            w = getattr(self, f"w{i}")
            hw = f.shape[2] * f.shape[3]
            parts.append((f * torch.sqrt(w / hw).view(1, -1, 1, 1)).flatten(1))
        return torch.cat(parts, dim=1)


def read_lin_weights(path: str) -> list[torch.Tensor]:
    """The five 1x1 conv weights of an lpips ``v0.1/alex.pth`` file (``linK.model.1.weight``)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    try:
        return [sd[f"lin{i}.model.1.weight"] for i in range(5)]
    except KeyError as exc:
        raise BenchError(f"not an LPIPS linear-layer file (missing {exc})", path) from exc


def _bundled_lin() -> str | None:
    try:
        import lpips
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth")
    return path if os.path.isfile(path) else None


def alexnet_features() -> torch.nn.Sequential:
    """torchvision AlexNet's ``features`` (uninitialised), without allocating the classifier."""
    with torch.device("meta"):
        features = torchvision.models.alexnet(weights=None).features
    return features.to_empty(device="cpu")


def build_tiny_lpips(seed: int = TINY_SEED) -> LPIPSNet:
    """Seeded AlexNet features (PyTorch's default conv init, in construction order) and
    seeded non-negative linear weights."""
    with seeded(seed):
        features = alexnet_features()
        for m in features:
            if isinstance(m, torch.nn.Conv2d):
                m.reset_parameters()
        lin = [torch.randn(c).abs() / c for c in CHANNELS]
    return LPIPSNet(features, lin).eval()


LIN_HINT = "set backbones.lpips.weights (or T2I_BENCH_LPIPS_WEIGHTS) to an LPIPS v0.1 alex.pth"
ALEX_HINT = "set backbones.lpips.alexnet_weights (or T2I_BENCH_ALEXNET_WEIGHTS) to a local copy"


def resolve_real(weights: str | None = None, alexnet_weights: str | None = None) -> tuple[str, str]:
    """(AlexNet file, LPIPS linear-layer file): the arguments, the environment variables,
    else torchvision's file in the torch hub cache and the ``lpips`` package's ``alex.pth``."""
    lin = weights or env_source("T2I_BENCH_LPIPS_WEIGHTS", None)
    if lin:
        lin = local_file(lin, "LPIPS v0.1 alex.pth", LIN_HINT)
    else:
        lin = _bundled_lin()
        if lin is None:
            raise BenchError(
                f"LPIPS v0.1 alex.pth not found: install the `lpips` package (it ships "
                f"lpips/weights/v0.1/alex.pth, also at {LIN_URL}), or {LIN_HINT}"
            )
    alex = alexnet_weights or env_source("T2I_BENCH_ALEXNET_WEIGHTS", None)
    if alex:
        alex = local_file(alex, "torchvision AlexNet weights", ALEX_HINT)
    else:
        alex = torch_hub_file(ALEXNET_FILE, ALEXNET_URL, ALEX_HINT)
    return alex, lin


def _label(alex: str, lin: str) -> str:
    if os.path.basename(alex) == ALEXNET_FILE and lin == _bundled_lin():
        return "alexnet-owt+lpips-v0.1"
    return f"{weights_label(alex)}+{weights_label(lin)}"


def load_real_lpips(
    weights: str | None = None, alexnet_weights: str | None = None
) -> tuple[LPIPSNet, str]:
    alex, lin_path = resolve_real(weights, alexnet_weights)
    features = alexnet_features()
    try:
        sd = torch.load(alex, map_location="cpu", weights_only=True)
        sd = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
        features.load_state_dict(sd)  # the classifier's weights are never used
    except Exception as exc:
        raise BenchError(f"cannot load AlexNet weights ({brief(exc)})", alex) from exc
    model = LPIPSNet(features, read_lin_weights(lin_path)).eval()
    return model, _label(alex, lin_path)


def preprocessing(size: int) -> str:
    return (
        f"RGB; resize to {size}x{size} (bilinear, antialias, on uint8); to [0,1]; x*2-1; "
        "LPIPS scaling (x-shift)/scale; embedding sqrt(w/HW)*unit-normalised relu1..5"
    )


def describe_lpips(
    profile: str = "tiny",
    weights: str | None = None,
    alexnet_weights: str | None = None,
    size: int | None = None,
) -> BackboneSpec:
    """The static spec of ``lpips_alex``: loads nothing."""
    check_profile(NAME, profile)
    arch = "torchvision AlexNet features relu1..5 + LPIPS v0.1 linear weights"
    if profile == "tiny":
        return BackboneSpec(
            NAME,
            "tiny",
            VERSION,
            arch,
            preprocessing(size or TINY_SIZE),
            f"seed={TINY_SEED}",
            transient=True,
        )
    alex, lin = resolve_real(weights, alexnet_weights)
    return BackboneSpec(
        NAME,
        "real",
        VERSION,
        arch,
        preprocessing(size or REAL_SIZE),
        _label(alex, lin),
        (alex, lin),
        transient=True,  # spatial features: 2.56 MB per image at 256 px
    )


class LPIPSBackbone(TorchBackbone):
    """Per-image LPIPS embeddings: LPIPS(a, b) = ||e_a - e_b||² (see module docstring)."""

    def __init__(
        self,
        net: LPIPSNet,
        size: int,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name, self.profile, self.weights = "lpips_alex", profile, weights
        self.net = net.to(self.device).eval()
        self.size = size
        self.transform = T.Compose(
            [
                T.PILToTensor(),
                T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                T.ToDtype(torch.float32, scale=True),
            ]
        )
        self.preprocessing = preprocessing(size)
        with torch.inference_mode():  # on the net's own device (meta included)
            probe = torch.zeros(1, 3, size, size, device=self.device)
            self.feature_dim = int(self.net(probe).shape[1])

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images]).to(self.device) * 2 - 1

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)

    def distance(self, a: Sequence[Image.Image], b: Sequence[Image.Image]) -> np.ndarray:
        """LPIPS between ``a[i]`` and ``b[i]`` (float64), via the embeddings."""
        ea, eb = self.embed_images(a).astype(np.float64), self.embed_images(b).astype(np.float64)
        return ((ea - eb) ** 2).sum(axis=1)


def make_lpips(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    alexnet_weights: str | None = None,
    size: int | None = None,
) -> LPIPSBackbone:
    """``size`` overrides the square input size (256 real, 64 tiny)."""
    check_profile("lpips_alex", profile)
    if profile == "tiny":
        net, label = build_tiny_lpips(), f"seed={TINY_SEED}"
        return LPIPSBackbone(net, size or TINY_SIZE, "tiny", label, device, batch_size)
    net, label = load_real_lpips(weights, alexnet_weights)
    return LPIPSBackbone(net, size or REAL_SIZE, "real", label, device, batch_size)


@register_backbone(NAME, describe=describe_lpips)
def _lpips_alex(profile: str, device: str = "cpu", **options: Any) -> LPIPSBackbone:
    return make_lpips(profile, device, **options)

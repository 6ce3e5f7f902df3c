"""The FID Inception-v3 network: 2048-d pool3 features (``inception_v3_fid``).

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (the one torchmetrics wraps):
uint8 RGB in, TF1-compatible bilinear resize to 299x299 inside the network, (x-128)/128,
then the Inception graph of the TensorFlow FID (``pt_inception-2015-12-05`` weights). The
weights file is the same one pytorch-fid and torch-fidelity download.

``real`` reads the weights from ``weights=`` / ``T2I_BENCH_INCEPTION_WEIGHTS``, else from the
torch hub cache (``pt_inception-2015-12-05-6726825d.pth`` or torch-fidelity's
``weights-inception-2015-12-05-6726825d.pth``), else downloads pytorch-fid's copy into it
unless ``HF_HUB_OFFLINE`` is set. The file is read with ``torch.load(weights_only=True)``
(torch-fidelity itself would unpickle a given path with ``weights_only=False``).

``tiny`` is the same network with seeded Kaiming-normal conv weights and identity batch norm
(a default random init makes every feature ~1e-9: FID 0), and the in-network resize set to
75x75 (the smallest Inception-v3 input) instead of 299, ~10x cheaper on CPU; both are
part of its identity (preprocessing string and weights label).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from t2i_bench.backbones._files import brief, local_file, torch_hub_file
from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    check_profile,
    env_source,
    pad_chunk,
    seeded,
    to_rgb,
    weights_label,
)
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.errors import BenchError

NAME = "inception_v3_fid"
VERSION = "1"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
WEIGHT_FILES = (
    "pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth",
)
ENV_VAR = "T2I_BENCH_INCEPTION_WEIGHTS"
TINY_INPUT_SIZE = 75  # the smallest input Inception-v3 accepts
REAL_INPUT_SIZE = 299


def _extractor_cls() -> type:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BenchError("the FID Inception backbone needs torch-fidelity") from exc
    return FeatureExtractorInceptionV3


def tiny_inception_state_dict(seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """A state dict in the FID Inception layout with non-degenerate, seeded random weights.

    torchvision's Inception3 (no aux head, 1008 classes) has the FID network's parameter
    names and shapes; conv weights are Kaiming-normal (fan-in, ReLU) so activations keep
    their scale through the 94 conv layers, batch norms are identity (running mean 0,
    variance 1, weight 1, bias 0).
    """
    import torchvision

    with seeded(seed):
        net = torchvision.models.inception_v3(
            weights=None, aux_logits=False, num_classes=1008, init_weights=False
        )
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            elif isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=0.01)
                torch.nn.init.zeros_(m.bias)
    return net.state_dict()


def inception_from_state_dict(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """torch-fidelity's FID Inception holding ``state_dict``.

    torch-fidelity reads a weights path with ``torch.load(weights_only=False)`` (arbitrary
    code from a pickle); we never hand it a path: the state dict is read here with
    ``weights_only=True`` and given to its constructor in place of the download."""
    import torch_fidelity.feature_extractor_inceptionv3 as module

    cls = _extractor_cls()
    original = module.load_state_dict_from_url
    module.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        net = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=None)
    finally:
        module.load_state_dict_from_url = original
    return net.eval()


def build_tiny_inception(seed: int = TINY_SEED) -> torch.nn.Module:
    """torch-fidelity's FID Inception with :func:`tiny_inception_state_dict` weights."""
    net = inception_from_state_dict(tiny_inception_state_dict(seed))
    net.INPUT_IMAGE_SIZE = TINY_INPUT_SIZE
    return net


HINT = f"set backbones.inception.weights (or {ENV_VAR}) to a local copy"


def find_real_weights(weights: str | None = None) -> str:
    """The FID Inception weights file: ``weights``, the environment variable, the torch hub
    cache (either published name), else downloaded when online; a missing one is one line."""
    explicit = weights or env_source(ENV_VAR, None)
    if explicit:
        return local_file(explicit, "FID Inception weights", HINT)
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    for name in WEIGHT_FILES:
        if os.path.isfile(os.path.join(hub, name)):
            return os.path.join(hub, name)
    return torch_hub_file(WEIGHT_FILES[0], WEIGHTS_URL, HINT)


def _label(path: str) -> str:
    published = os.path.basename(path) in WEIGHT_FILES
    return "pt_inception-2015-12-05" if published else weights_label(path)


def load_real_inception(weights: str | None = None) -> tuple[torch.nn.Module, str]:
    path = find_real_weights(weights)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        net = inception_from_state_dict(state_dict)
    except Exception as exc:
        raise BenchError(
            f"cannot load the FID Inception weights ({brief(exc)}); "
            f"the file must be a state dict such as {WEIGHT_FILES[0]} ({WEIGHTS_URL})",
            path,
        ) from exc
    return net, _label(path)


def preprocessing(size: int) -> str:
    return (
        f"RGB uint8 HWC->CHW; in-network TF1-compatible bilinear resize to {size}x{size} "
        "(align_corners=False, no antialias); (x-128)/128; pool3 2048-d float32"
    )


def describe_inception(profile: str = "tiny", weights: str | None = None) -> BackboneSpec:
    """The static spec of ``inception_v3_fid``: loads nothing."""
    check_profile(NAME, profile)
    arch = "torch-fidelity FeatureExtractorInceptionV3 (inception-v3-compat, pool3 2048)"
    if profile == "tiny":
        return BackboneSpec(
            NAME,
            "tiny",
            VERSION,
            arch,
            preprocessing(TINY_INPUT_SIZE),
            f"seed={TINY_SEED};kaiming",
        )
    path = find_real_weights(weights)
    return BackboneSpec(
        NAME, "real", VERSION, arch, preprocessing(REAL_INPUT_SIZE), _label(path), (path,)
    )


class InceptionBackbone(TorchBackbone):
    """2048-d pool features of the FID Inception network, from uint8 RGB images.

    Images in a batch are grouped by size (the network resizes each to its input size);
    ``forward_calls`` counts network forwards.
    """

    feature_dim = 2048

    def __init__(
        self,
        net: torch.nn.Module,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name, self.profile, self.weights = "inception_v3_fid", profile, weights
        self.net = net.to(self.device).eval()
        self.preprocessing = preprocessing(int(net.INPUT_IMAGE_SIZE))

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """uint8 (n, 3, h, w) on the device; the images must share one size."""
        arr = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().to(self.device)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)[0]

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return an (n, 2048) float32 array of pool3 features."""
        rgb = to_rgb(images)
        out = np.zeros((len(rgb), self.feature_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(rgb), self.batch_size):
                groups: dict[tuple[int, int], list[int]] = defaultdict(list)
                for i in range(start, min(start + self.batch_size, len(rgb))):
                    groups[rgb[i].size].append(i)
                for idx in groups.values():
                    padded = pad_chunk(idx, self.batch_size)  # one batch shape: see pad_chunk
                    prepared = self._prepare_images([rgb[i] for i in padded])
                    feats = self._forward_images(prepared)[: len(idx)]
                    self.forward_calls += 1
                    out[idx] = feats.float().cpu().numpy()[: len(idx)]
        return out


def make_inception(
    profile: str = "tiny", device: str = "cpu", batch_size: int = 32, weights: str | None = None
) -> InceptionBackbone:
    check_profile("inception_v3_fid", profile)
    if profile == "tiny":
        return InceptionBackbone(
            build_tiny_inception(), "tiny", f"seed={TINY_SEED};kaiming", device, batch_size
        )
    net, label = load_real_inception(weights)
    return InceptionBackbone(net, "real", label, device, batch_size)


@register_backbone(NAME, describe=describe_inception)
def _inception_v3_fid(profile: str, device: str = "cpu", **options: Any) -> InceptionBackbone:
    return make_inception(profile, device, **options)

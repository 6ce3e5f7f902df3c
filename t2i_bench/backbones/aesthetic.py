"""The LAION aesthetic predictor v2 (Schuhmann et al., "improved-aesthetic-predictor"):
head ``laion_aesthetic_v2`` on ``clip_vit_l14_openai`` image embeddings.

Published: ``sac+logos+ava1-l14-linearMSE.pth``, an MLP trained with MSE on SAC + LAION-Logos
+ AVA ratings (1-10) over L2-normalised OpenAI CLIP ViT-L/14 image embeddings: Linear(768,
1024) → Dropout → Linear(1024, 128) → Dropout → Linear(128, 64) → Dropout → Linear(64, 16) →
Linear(16, 1), no activations (state-dict keys ``layers.{0,2,4,6,7}``). Score = MLP(e/‖e‖)
(a zero embedding is left as is, like the reference code's ``normalized``).

``real``: ``weights=`` / ``T2I_BENCH_AESTHETIC`` (the ``.pth`` file), else the torch hub
cache (``<hub>/checkpoints/sac+logos+ava1-l14-linearMSE.pth``, where
``torch.hub.load_state_dict_from_url`` of the published file puts it). The identity carries
the file's sha256. ``tiny``: the same MLP on the tiny CLIP's 64-d embeddings, seeded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from t2i_bench.backbones._torch import TINY_SEED, check_profile, env_source, seeded
from t2i_bench.backbones.clip import TINY_CLIP_CFG
from t2i_bench.backbones.heads import Head, register_head
from t2i_bench.errors import BenchError
from t2i_bench.hashing import file_sha256

FILENAME = "sac+logos+ava1-l14-linearMSE.pth"
HIDDEN = (1024, 128, 64, 16)
DROPOUT = (0.2, 0.2, 0.1)


class AestheticMLP(torch.nn.Module):
    """The predictor's MLP, with its module indices (``layers.0`` … ``layers.7``)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        sizes = (in_features, *HIDDEN)
        mods: list[torch.nn.Module] = []
        for i in range(len(HIDDEN)):
            mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(DROPOUT):
                mods.append(torch.nn.Dropout(DROPOUT[i]))
        mods.append(torch.nn.Linear(HIDDEN[-1], 1))
        self.layers = torch.nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AestheticHead(Head):
    name = "laion_aesthetic_v2"
    backbone = "clip_vit_l14_openai"

    def __init__(self, mlp: AestheticMLP, profile: str, weights: str, device: str = "cpu"):
        self.mlp = mlp.to(device).eval()
        self.profile, self.weights, self.device = profile, weights, torch.device(device)
        self.in_features = int(mlp.layers[0].in_features)

    def apply(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise BenchError(
                f"{self.name} expects (n, {self.in_features}) {self.backbone} embeddings, "
                f"got {x.shape}"
            )
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norm == 0, 1.0, norm)
        with torch.inference_mode():
            out = self.mlp(torch.from_numpy(x).to(self.device))
        return out[:, 0].double().cpu().numpy()


def build_tiny_aesthetic(seed: int = TINY_SEED) -> AestheticMLP:
    with seeded(seed):
        mlp = AestheticMLP(TINY_CLIP_CFG["embed_dim"])
        for layer in mlp.layers:
            if isinstance(layer, torch.nn.Linear):  # fan-in scaling: outputs vary with input
                torch.nn.init.normal_(layer.weight, std=layer.in_features**-0.5)
    return mlp.eval()


def load_aesthetic_mlp(path: Path) -> AestheticMLP:
    """The MLP from a predictor ``.pth`` state dict (input width read from ``layers.0``)."""
    if not path.is_file():
        raise BenchError("aesthetic predictor weights not found", str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if "layers.0.weight" not in sd:
        raise BenchError("not an aesthetic predictor state dict (no layers.0.weight)", str(path))
    mlp = AestheticMLP(int(sd["layers.0.weight"].shape[1]))
    try:
        mlp.load_state_dict(sd)
    except RuntimeError as exc:
        raise BenchError(f"aesthetic predictor weights do not fit: {exc}", str(path)) from exc
    return mlp.eval()


def _default_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FILENAME


def _real_path() -> Path:
    source = env_source("T2I_BENCH_AESTHETIC", None)
    path = Path(os.path.expanduser(source)) if source else _default_path()
    if not path.is_file():
        raise BenchError(
            f"aesthetic predictor weights not found: put {FILENAME} there or set "
            "T2I_BENCH_AESTHETIC",
            str(path),
        )
    return path


def _weights_label(profile: str) -> str:
    check_profile("laion_aesthetic_v2", profile)
    return f"seed={TINY_SEED}" if profile == "tiny" else f"sha256:{file_sha256(_real_path())}"


def aesthetic_identity(profile: str) -> str:
    """The head's identity (its weights' sha256, or the tiny seed) without loading it."""
    head = AestheticHead.__new__(AestheticHead)
    head.profile, head.weights = profile, _weights_label(profile)
    return head.identity


@register_head("laion_aesthetic_v2", identity=aesthetic_identity)
def make_aesthetic(profile: str = "tiny", device: str = "cpu") -> AestheticHead:
    if profile == "tiny":
        return AestheticHead(build_tiny_aesthetic(), "tiny", _weights_label(profile), device)
    path = _real_path()
    return AestheticHead(load_aesthetic_mlp(path), "real", _weights_label(profile), device)

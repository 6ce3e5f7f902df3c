"""DreamSim (Fu et al., NeurIPS 2023), the published ensemble: ``dreamsim``.

Three ViT-B/16 — DINO (Caron et al.), OpenAI CLIP and OpenCLIP (LAION-400M) — fine-tuned
with LoRA on the attention ``qkv`` projections to agree with human similarity judgments
(NIGHTS). As the ``dreamsim`` package (0.2.1) computes it, per image:

1. RGB, resize to 224×224 (bicubic, PIL; the aspect ratio is not kept), to [0, 1];
2. DINO: ImageNet mean/std; the CLS token of the last block's output (before the final
   LayerNorm), 768-d;
3. CLIP and OpenCLIP: OpenAI CLIP mean/std; a ViT with a LayerNorm before the blocks (CLIP's
   ``ln_pre``), the final LayerNorm on the CLS token, then the 768→512 projection;
4. concatenate (768 + 512 + 512 = 1792), subtract the vector's own mean, L2-normalise.

The DreamSim distance of two images is 1 − cos of these embeddings (= 1 − dot product).

``real`` reads the package's cache folder (``weights=`` / ``T2I_BENCH_DREAMSIM``; default
``~/.cache/dreamsim``), in the layout ``dreamsim(cache_dir=...)`` leaves there (the files of
:data:`CHECKPOINT_URL`, unzipped, and the DINO backbone torch hub downloads from
:data:`DINO_URL`): ``checkpoints/dino_vitbase16_pretrain.pth`` (the DINO ViT-B/16 backbone, as
torch hub stores it; else the torch hub cache), ``clip_vitb16_pretrain.pth.tar`` and
``open_clip_vitb16_pretrain.pth.tar`` (``{"state_dict": ViT weights + "proj"}``, the CLIP
towers converted to DINO's ViT layout with ``pos_drop`` as CLIP's ``ln_pre``) and
``ensemble_lora/`` (PEFT ``adapter_config.json`` + ``adapter_model.safetensors``, or
``adapter_model.bin`` when there is no safetensors file, as PEFT chooses), merged into the
weights at load time. The zip's ``dino_vitb16_pretrain.pth`` (DINO's projection head) is not
read: the ensemble uses the DINO CLS token, not the head. Widths, depths, patch and image
sizes are read from the files' tensor shapes (memory-mapped, when describing); heads = width /
64 (ViT-B). Nothing is downloaded: a missing file is one line saying where to get it.
``tiny``: the same three towers at width 64, depth 2, 64 px, seeded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from timm.models.vision_transformer import VisionTransformer
from torchvision import transforms

from t2i_bench.backbones._files import brief, expand, present, tensor_shapes
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

NAME = "dreamsim"
VERSION = "1"
ENV_VAR = "T2I_BENCH_DREAMSIM"
DEFAULT_ROOT = "~/.cache/dreamsim"
PUBLISHED_LABEL = "dreamsim-0.2.1-ensemble"
CHECKPOINT_URL = (
    "https://github.com/ssundaram21/dreamsim/releases/download/v0.2.0-checkpoints/"
    "dreamsim_ensemble_checkpoint.zip"
)
DINO_URL = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
HINT = f"or set backbones.dreamsim.weights (or {ENV_VAR}) to a dreamsim cache folder"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_DIM = 64  # ViT-B/16: 768 / 12 heads
IMAGE_SIZE = 224
TOWERS = ("dino", "clip", "open_clip")  # the package's extractor order
DINO_FILE = "checkpoints/dino_vitbase16_pretrain.pth"
CLIP_FILES = {
    "clip": "clip_vitb16_pretrain.pth.tar",
    "open_clip": "open_clip_vitb16_pretrain.pth.tar",
}
LORA_DIR = "ensemble_lora"
LORA_CONFIG = "adapter_config.json"
LORA_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # PEFT's order of preference
TINY = {"width": 64, "depth": 2, "patch": 16, "image_size": 64, "proj": 32}


class QuickGELU(torch.nn.Module):
    """OpenAI CLIP's activation, x·sigmoid(1.702x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def vit(tower: str, width: int, depth: int, patch: int, image_size: int) -> VisionTransformer:
    """A timm ViT with the tower's conventions (DINO: GELU, LN eps 1e-6; CLIP: LN before the
    blocks, eps 1e-5, QuickGELU for OpenAI's weights)."""
    clip_style = tower != "dino"
    eps = 1e-5 if clip_style else 1e-6
    model = VisionTransformer(
        img_size=image_size,
        patch_size=patch,
        embed_dim=width,
        depth=depth,
        num_heads=max(1, width // HEAD_DIM),
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
        global_pool="token",
        norm_layer=partial(torch.nn.LayerNorm, eps=eps),
        act_layer=QuickGELU if tower == "clip" else torch.nn.GELU,
    )
    if clip_style:  # CLIP's ln_pre; set here because timm's pre_norm also drops the patch bias
        model.norm_pre = torch.nn.LayerNorm(width, eps=eps)
    return model


class Tower(torch.nn.Module):
    """One extractor: a ViT (as ``model``, the package's module path for its LoRA keys) and,
    for the CLIP towers, the projection."""

    def __init__(self, name: str, model: VisionTransformer, proj: torch.Tensor | None) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.proj = None if proj is None else torch.nn.Parameter(proj, requires_grad=False)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if name == "dino" else (CLIP_MEAN, CLIP_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.norm_pre(m._pos_embed(m.patch_embed((pixels - self.mean) / self.std)))
        x = m.blocks(x)
        if self.proj is None:  # DINO: CLS of the last block, before the final norm
            return x[:, 0]
        return m.norm(x)[:, 0] @ self.proj


class DreamSimEnsemble(torch.nn.Module):
    """The three towers; ``forward`` gives the normalised DreamSim embedding."""

    def __init__(self, towers: Sequence[Tower]) -> None:
        super().__init__()
        self.extractor_list = torch.nn.ModuleList(towers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([tower(pixels) for tower in self.extractor_list], dim=-1)
        feats = feats - feats.mean(dim=-1, keepdim=True)
        return feats / feats.norm(dim=-1, keepdim=True)


def o1_init_(module: torch.nn.Module) -> None:
    """Re-initialise every parameter at O(1) scale (matrices normal(0, fan_in^-1/2), norms
    1 ± 0.1, biases 0.1·N(0,1), position and class embeddings 0.5·N(0,1)), so that small random
    towers tell images apart; timm's default (std 0.02) makes all embeddings nearly equal."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("pos_embed", "cls_token")):
                p.normal_(0.0, 0.5)
            elif p.ndim >= 2:
                p.normal_(0.0, p[0].numel() ** -0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))


def build_tiny_dreamsim(seed: int = TINY_SEED) -> DreamSimEnsemble:
    """The tiny ensemble, deterministically initialised from ``seed``."""
    t = TINY
    with seeded(seed):
        towers = []
        for name in TOWERS:
            model = vit(name, t["width"], t["depth"], t["patch"], t["image_size"])
            proj = None if name == "dino" else torch.empty(t["width"], t["proj"])
            towers.append(Tower(name, model, proj))
        ensemble = DreamSimEnsemble(towers)
        o1_init_(ensemble)
    return ensemble.eval()


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise BenchError("DreamSim weights file not found", str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BenchError(f"cannot read DreamSim weights ({type(exc).__name__})", str(path)) from exc


def vit_geometry(
    tower: str, shapes: Mapping[str, Sequence[int]], path: str
) -> tuple[int, int, int, int]:
    """(width, depth, patch, image size) of a tower's ViT, from its tensor shapes."""
    try:
        width = int(shapes["pos_embed"][-1])
        tokens = int(shapes["pos_embed"][1])
        patch = int(shapes["patch_embed.proj.weight"][-1])
    except (KeyError, IndexError) as exc:
        raise BenchError(f"not a DreamSim {tower} ViT state dict (missing {exc})", path) from exc
    blocks = [int(k.split(".")[1]) for k in shapes if k.startswith("blocks.")]
    if not blocks:
        raise BenchError(f"not a DreamSim {tower} ViT state dict (no blocks)", path)
    grid = round((tokens - 1) ** 0.5)
    return width, 1 + max(blocks), patch, grid * patch


def _vit_from_state_dict(tower: str, sd: dict[str, torch.Tensor], path: Path) -> VisionTransformer:
    shapes = {k: tuple(v.shape) for k, v in sd.items() if isinstance(v, torch.Tensor)}
    width, depth, patch, image_size = vit_geometry(tower, shapes, str(path))
    model = vit(tower, width, depth, patch, image_size)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise BenchError(
            f"DreamSim {tower} weights do not fit a ViT: missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}",
            str(path),
        )
    return model


@dataclass(frozen=True)
class DreamSimSource:
    """Where the real DreamSim's files are, resolved without loading it."""

    root: str  # the dreamsim cache folder
    towers: tuple[str, str, str]  # DINO, CLIP, OpenCLIP weight files (:data:`TOWERS` order)
    lora_dir: str
    files: tuple[str, ...]  # every file the loader reads
    image_size: int  # from the towers' tensor shapes
    label: str


def _missing_from_zip(name: str, root: str, what: str) -> BenchError:
    return BenchError(
        f"missing {name} ({what}): download {CHECKPOINT_URL} and unzip it into {root}/ (what "
        f"dreamsim(cache_dir=...) does), {HINT}"
    )


def _dino_file(root: str) -> str:
    """The DINO ViT-B/16 backbone: in the cache folder (where the package's torch hub call
    puts it), else in the torch hub cache."""
    local = os.path.join(root, DINO_FILE)
    if os.path.isfile(local):
        return local
    hub = os.path.join(torch.hub.get_dir(), DINO_FILE)
    if os.path.isfile(hub):
        return hub
    name = os.path.basename(DINO_FILE)
    raise BenchError(
        f"missing {name} (DreamSim's DINO ViT-B/16): download {DINO_URL} into "
        f"{os.path.dirname(local)}/ (where the dreamsim package puts it) or "
        f"{os.path.dirname(hub)}/ (the torch hub cache), {HINT}"
    )


def _tower_geometry(tower: str, path: str) -> tuple[int, int, int, int]:
    try:
        shapes = tensor_shapes(path)
    except Exception as exc:  # a truncated or foreign file: one line naming it
        raise BenchError(
            f"cannot read DreamSim {tower} weights ({brief(exc)}); download them again "
            f"({DINO_URL if tower == 'dino' else CHECKPOINT_URL})",
            path,
        ) from exc
    if tower != "dino" and "proj" not in shapes:
        raise BenchError(f"DreamSim {tower} file has no state_dict/proj", path)
    return vit_geometry(tower, shapes, path)


def resolve_real(weights: str | None = None) -> DreamSimSource:
    """The files of the real ensemble: ``weights`` (or ``T2I_BENCH_DREAMSIM``) is the dreamsim
    cache folder, default ``~/.cache/dreamsim``; the image size comes from the towers' shapes."""
    source = weights or env_source(ENV_VAR, None)
    root = expand(source or DEFAULT_ROOT)
    if source and not os.path.isdir(root):
        raise BenchError(
            f"not a folder: DreamSim's weights are a dreamsim cache folder ({HINT})", root
        )
    clip_towers = []  # the published zip's files first: the first thing to download
    for tower in TOWERS[1:]:
        path = os.path.join(root, CLIP_FILES[tower])
        if not os.path.isfile(path):
            raise _missing_from_zip(CLIP_FILES[tower], root, f"DreamSim's {tower} tower")
        clip_towers.append(path)
    lora_dir = os.path.join(root, LORA_DIR)
    config = os.path.join(lora_dir, LORA_CONFIG)
    if not os.path.isfile(config):
        raise _missing_from_zip(f"{LORA_DIR}/{LORA_CONFIG}", root, "the DreamSim LoRA adapter")
    adapters = present(lora_dir, LORA_WEIGHTS)  # PEFT reads the first one present
    if not adapters:
        name = f"{LORA_DIR}/{LORA_WEIGHTS[0]} (or {LORA_WEIGHTS[1]})"
        raise _missing_from_zip(name, root, "the DreamSim LoRA adapter's weights")
    towers = [_dino_file(root), *clip_towers]
    sizes = {_tower_geometry(t, p)[3] for t, p in zip(TOWERS, towers, strict=True)}
    if len(sizes) != 1:
        raise BenchError(f"DreamSim towers disagree on the image size ({sorted(sizes)})", root)
    label = PUBLISHED_LABEL if not source else weights_label(root)
    files = (*towers, config, adapters[0])
    return DreamSimSource(
        root, (towers[0], towers[1], towers[2]), lora_dir, files, sizes.pop(), label
    )


def load_real_dreamsim(root: Path | str) -> DreamSimEnsemble:
    """The ensemble from the package's cache folder ``root`` (exactly the files
    :func:`resolve_real` names), LoRA merged."""
    src = resolve_real(str(root))
    towers = []
    for name, filename in zip(TOWERS, src.towers, strict=True):
        path = Path(filename)
        if name == "dino":
            towers.append(Tower(name, _vit_from_state_dict(name, _torch_load(path), path), None))
            continue
        sd = dict(_torch_load(path).get("state_dict", {}))
        if "proj" not in sd:
            raise BenchError("DreamSim CLIP file has no state_dict/proj", str(path))
        proj = sd.pop("proj").float()
        sd = {
            ("norm_pre." + k[len("pos_drop.") :] if k.startswith("pos_drop.") else k): v
            for k, v in sd.items()
        }
        towers.append(Tower(name, _vit_from_state_dict(name, sd, path), proj))
    model = DreamSimEnsemble(towers).float()
    return merge_lora(model, Path(src.lora_dir))


def merge_lora(model: DreamSimEnsemble, lora_dir: Path) -> DreamSimEnsemble:
    """Apply the package's PEFT LoRA adapter (``ensemble_lora``) and merge it into the weights."""
    from peft import PeftModel

    if not (lora_dir / "adapter_config.json").is_file():
        raise BenchError("DreamSim LoRA adapter_config.json not found", str(lora_dir))
    try:
        peft_model = PeftModel.from_pretrained(model, str(lora_dir), is_trainable=False)
    except Exception as exc:
        raise BenchError(
            f"cannot apply the DreamSim LoRA adapter ({type(exc).__name__}: {str(exc)[:200]})",
            str(lora_dir),
        ) from exc
    return peft_model.merge_and_unload().eval()


def describe_preprocessing(image_size: int) -> str:
    mean = ",".join(f"{v:.8g}" for v in IMAGENET_MEAN)
    cmean = ",".join(f"{v:.8g}" for v in CLIP_MEAN)
    return (
        f"RGB; resize to {image_size}x{image_size} (bicubic, PIL, aspect not kept); to [0,1]; "
        f"dino: normalize mean=({mean}), CLS of the last block; clip/open_clip: normalize "
        f"mean=({cmean}), ln_pre, ln_post CLS @ proj; concat, minus own mean, L2-normalised"
    )


class DreamSimBackbone(TorchBackbone):
    """Normalised DreamSim ensemble embeddings; distance = 1 − cos."""

    def __init__(
        self,
        model: DreamSimEnsemble,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name, self.profile, self.weights = "dreamsim", profile, weights
        self.model = model.to(self.device).eval()
        first = model.extractor_list[0].model
        size = int(first.patch_embed.img_size[0])
        self.transform = transforms.Compose(
            [
                transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
                transforms.ToTensor(),
            ]
        )
        self.preprocessing = describe_preprocessing(size)
        self.feature_dim = sum(
            int(t.proj.shape[1]) if t.proj is not None else int(t.model.embed_dim)
            for t in model.extractor_list
        )

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images]).to(self.device)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


ARCHITECTURE = (
    "dreamsim ensemble: DINO + CLIP (QuickGELU) + OpenCLIP ViTs (timm), LoRA on qkv merged"
)


def describe_dreamsim(profile: str = "tiny", weights: str | None = None) -> BackboneSpec:
    """The static spec of ``dreamsim``; the image size is read from the towers' tensor shapes
    (memory-mapped), which also checks the files before any work."""
    check_profile(NAME, profile)
    if profile == "tiny":
        arch = f"{ARCHITECTURE} {json.dumps(TINY, sort_keys=True)}"
        preprocessing = describe_preprocessing(TINY["image_size"])
        return BackboneSpec(NAME, "tiny", VERSION, arch, preprocessing, f"seed={TINY_SEED}")
    src = resolve_real(weights)
    return BackboneSpec(
        NAME,
        "real",
        VERSION,
        ARCHITECTURE,
        describe_preprocessing(src.image_size),
        src.label,
        src.files,
        description="dreamsim 0.2.1 ensemble (DINO + CLIP + OpenCLIP ViT-B/16)",
    )


def make_dreamsim(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
) -> DreamSimBackbone:
    """Build ``dreamsim``; ``weights`` (``real``) is the dreamsim package's cache folder."""
    check_profile(NAME, profile)
    if profile == "tiny":
        return DreamSimBackbone(
            build_tiny_dreamsim(), "tiny", f"seed={TINY_SEED}", device, batch_size
        )
    src = resolve_real(weights)
    model = load_real_dreamsim(src.root)
    return DreamSimBackbone(model, "real", src.label, device, batch_size)


@register_backbone(NAME, describe=describe_dreamsim)
def _dreamsim(profile: str, device: str = "cpu", **options: Any) -> DreamSimBackbone:
    return make_dreamsim(profile, device, **options)

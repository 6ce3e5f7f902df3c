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
``~/.cache/dreamsim``), in the layout ``dreamsim(cache_dir=...)`` leaves there:
``checkpoints/dino_vitbase16_pretrain.pth`` (the DINO ViT-B/16 backbone, as torch hub
stores it; else the torch hub cache), ``clip_vitb16_pretrain.pth.tar`` and
``open_clip_vitb16_pretrain.pth.tar`` (``{"state_dict": ViT weights + "proj"}``, the CLIP
towers converted to DINO's ViT layout with ``pos_drop`` as CLIP's ``ln_pre``) and
``ensemble_lora/`` (PEFT ``adapter_config.json`` + ``adapter_model.{safetensors,bin}``),
merged into the weights at load time. Widths, depths and patch sizes are read from the files;
heads = width / 64 (ViT-B). ``tiny``: the same three towers at width 64, depth 2, 64 px,
seeded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from timm.models.vision_transformer import VisionTransformer
from torchvision import transforms

from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    check_profile,
    env_source,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import register_backbone
from t2i_bench.errors import BenchError

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


def _vit_from_state_dict(tower: str, sd: dict[str, torch.Tensor], path: Path) -> VisionTransformer:
    try:
        width = int(sd["pos_embed"].shape[-1])
        tokens = int(sd["pos_embed"].shape[1])
        patch = int(sd["patch_embed.proj.weight"].shape[-1])
    except KeyError as exc:
        raise BenchError(
            f"not a DreamSim {tower} ViT state dict (missing {exc})", str(path)
        ) from exc
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    grid = round((tokens - 1) ** 0.5)
    model = vit(tower, width, depth, patch, grid * patch)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise BenchError(
            f"DreamSim {tower} weights do not fit a ViT: missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}",
            str(path),
        )
    return model


def _dino_file(root: Path) -> Path:
    local = root / DINO_FILE
    if local.is_file():
        return local
    return Path(torch.hub.get_dir()) / DINO_FILE


def load_real_dreamsim(root: Path) -> DreamSimEnsemble:
    """The ensemble from the package's cache folder ``root``, LoRA merged."""
    dino_path = _dino_file(root)
    dino_sd = _torch_load(dino_path)
    towers = [Tower("dino", _vit_from_state_dict("dino", dino_sd, dino_path), None)]
    for name, filename in CLIP_FILES.items():
        path = root / filename
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
    return merge_lora(model, root / LORA_DIR)


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


def make_dreamsim(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
) -> DreamSimBackbone:
    """Build ``dreamsim``; ``weights`` (``real``) is the dreamsim package's cache folder."""
    check_profile("dreamsim", profile)
    if profile == "tiny":
        return DreamSimBackbone(
            build_tiny_dreamsim(), "tiny", f"seed={TINY_SEED}", device, batch_size
        )
    default = os.path.expanduser("~/.cache/dreamsim")
    source = weights or env_source("T2I_BENCH_DREAMSIM", default) or default
    root = Path(os.path.expanduser(source))
    model = load_real_dreamsim(root)
    label = "dreamsim-0.2.1-ensemble" if source == default else weights_label(str(root))
    return DreamSimBackbone(model, "real", label, device, batch_size)


@register_backbone("dreamsim")
def _dreamsim(profile: str, device: str = "cpu", **options: Any) -> DreamSimBackbone:
    return make_dreamsim(profile, device, **options)

"""An SD 1.5-architecture pipeline with random weights, for the GPU comparisons.

Built from the published configs, nothing downloaded: the UNet from ``tests/data/sd15_unet.json``
(the published ``unet/config.json``), the text encoder from ``tests/data/clip_l_text.json``
(CLIP ViT-L/14's text tower), the VAE from :data:`VAE_CONFIG` (the published
``vae/config.json``), the DDIM scheduler with SD 1.x's noise schedule, and CLIP's tokenizer
from the BPE vocabulary bundled with open_clip (77 tokens). Weights are PyTorch's default
initialisation from a fixed seed; the pipeline is saved as a diffusers folder in the requested
dtype and loaded back through t2i-bench's ``load_base_pipeline``, as a run would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REPO, Context, Skipped

DATA = REPO / "tests" / "data"
#: AutoencoderKL config of Stable Diffusion 1.5 (published vae/config.json, defaults dropped).
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}
#: Small stand-ins (same block types) for exercising this code on a CPU in tests.
SMALL = {
    "unet": {"block_out_channels": [32, 64, 64, 64], "cross_attention_dim": 32},
    "text": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "projection_dim": 32,
    },
    "vae": {"block_out_channels": [32, 32, 64, 64]},
}


def _published(name: str) -> dict[str, Any]:
    config = json.loads((DATA / f"{name}.json").read_text())
    config.pop("_note", None)
    return config


def require_cuda() -> None:
    """Raise :class:`Skipped` when no CUDA device is present."""
    if not torch.cuda.is_available():
        raise Skipped("no CUDA device on this machine (needs a GPU; runs when one is present)")


def build_sd15_folder(folder: Path, device: str, dtype: torch.dtype, small: bool = False) -> Path:
    """Write an SD 1.5-architecture pipeline with random weights to ``folder``."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from t2i_bench.generation.tiny import SCHEDULER_CONFIG, write_clip_vocab

    if (folder / "model_index.json").is_file():
        return folder
    unet_config, text_config = _published("sd15_unet"), _published("clip_l_text")
    vae_config = dict(VAE_CONFIG)
    if small:
        unet_config.update(SMALL["unet"])
        text_config.update(SMALL["text"])
        vae_config.update(SMALL["vae"])
    vocab = folder.parent / f"{folder.name}-vocab"
    write_clip_vocab(vocab)
    tokenizer = CLIPTokenizer.from_pretrained(str(vocab), model_max_length=77)
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: fast on a GPU
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**vae_config)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(dtype=dtype)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def gpu_setup(ctx: Context) -> dict[str, Any]:
    """The saved pipeline folder and the sampler, once per invocation (skips without CUDA)."""
    require_cuda()

    def build() -> dict[str, Any]:
        from t2i_bench.config import SamplerConfig

        folder = build_sd15_folder(ctx.workdir / "sd15-random", "cuda", torch.float16)
        steps = ctx.size(25, 5)
        sampler = SamplerConfig(
            steps=steps, guidance_scale=7.5, width=512, height=512, batch_size=8
        )
        return {"folder": folder, "sampler": sampler, "device": "cuda", "dtype": "float16"}

    return ctx.memo("sd15_gpu", build)

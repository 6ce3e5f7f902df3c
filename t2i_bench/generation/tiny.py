"""The ``tiny`` base model: a small, deterministically initialised Stable Diffusion 1.x.

Every component is a real diffusers/transformers module with the SD 1.x class layout
(``UNet2DConditionModel`` with ``Transformer2DModel``/``ResnetBlock2D``/``Downsample2D``/
``Upsample2D``, ``AutoencoderKL`` with an 8x downsampling like SD's VAE, a ``CLIPTextModel``
with ``CLIPAttention``/``CLIPMLP`` and CLIP's real 49,408-token BPE vocabulary), so adapters
trained with LyCORIS's kohya wrapper target the same module classes as on SD 1.5. Images are
64x64, latents 4x8x8, and the text context 32 tokens (CLIP's is 77). Nothing is downloaded:
the tokenizer is built from the BPE merges file that ships with open_clip.
"""

from __future__ import annotations

import functools
import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from t2i_bench.errors import BenchError

TINY_IMAGE_SIZE = 64
TINY_LATENT_SIZE = 8  # the VAE downsamples by 8, like SD's
# Shorter than CLIP's 77 (a quarter less compute per training step); prompts are truncated
# to 32 tokens, which the benchmark's prompts fit. The text encoder's
# max_position_embeddings is the same number.
TINY_MAX_LENGTH = 32
CLIP_VOCAB_SIZE = 49408
BOS_TOKEN, EOS_TOKEN = "<|startoftext|>", "<|endoftext|>"

# SD 1.x noise schedule (the same betas train and sample)
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

UNET_CONFIG: dict[str, Any] = {
    "sample_size": TINY_LATENT_SIZE,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 2,  # diffusers' legacy name: the number of heads (head dim 16/32)
    "norm_num_groups": 8,
    # a pooled text embedding added to the time embedding (diffusers' "text" addition
    # embedding): global conditioning that a UNet this small and this briefly trained needs
    "addition_embed_type": "text",
    "addition_embed_type_num_heads": 2,
}

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (8, 16, 32, 32),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 2,  # 1-channel groups (instance norm) would erase flat colours
    "sample_size": TINY_IMAGE_SIZE,
    "scaling_factor": 1.0,  # set from the latent statistics after the VAE is trained
}

TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": CLIP_VOCAB_SIZE,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": TINY_MAX_LENGTH,
    "projection_dim": 32,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}


@functools.lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """CLIP's vocabulary and merges, built from open_clip's bundled BPE file as CLIP does."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = tuple(lines[1 : 49152 - 256 - 2 + 1])  # line 0 is a header
    byte_chars = list(bytes_to_unicode().values())  # byte-level BPE alphabet
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split()) for m in merges]
    vocab += [BOS_TOKEN, EOS_TOKEN]
    return tuple(vocab), merges


def write_clip_vocab(save_dir: Path) -> None:
    """Write CLIP's ``vocab.json`` and ``merges.txt`` (HF format) into ``save_dir``."""
    vocab, merges = _clip_vocab_and_merges()
    save_dir.mkdir(parents=True, exist_ok=True)
    encoder = {token: i for i, token in enumerate(vocab)}
    (save_dir / "vocab.json").write_text(json.dumps(encoder, ensure_ascii=False), "utf-8")
    (save_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")


def build_tiny_tokenizer(save_dir: Path | None = None) -> CLIPTokenizer:
    """CLIP's real tokenizer (49,408 tokens; context ``TINY_MAX_LENGTH``), built offline.

    The vocabulary and merges come from the BPE file bundled with open_clip.

    With ``save_dir`` the ``vocab.json``/``merges.txt`` are kept there; otherwise a temporary
    directory is used.
    """
    if save_dir is not None:
        write_clip_vocab(Path(save_dir))
        tokenizer = CLIPTokenizer.from_pretrained(str(save_dir), model_max_length=TINY_MAX_LENGTH)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            write_clip_vocab(Path(tmp))
            tokenizer = CLIPTokenizer.from_pretrained(tmp, model_max_length=TINY_MAX_LENGTH)
    # transformers can silently hand back a 3-token tokenizer when it misses the files
    if len(tokenizer) != CLIP_VOCAB_SIZE:
        raise BenchError(f"tiny tokenizer has {len(tokenizer)} tokens, expected {CLIP_VOCAB_SIZE}")
    return tokenizer


def build_tiny_components(seed: int = 0) -> dict[str, Any]:
    """Untrained tiny SD 1.x components, initialised from ``seed`` (global RNG untouched).

    Returns ``unet``, ``vae``, ``text_encoder``, ``tokenizer`` and ``scheduler``; the modules
    are float32, in eval mode, on the CPU.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**UNET_CONFIG)
        vae = AutoencoderKL(**VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    for module in (unet, vae, text_encoder):
        module.eval()
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": build_tiny_tokenizer(),
        "scheduler": DDIMScheduler(**SCHEDULER_CONFIG),
    }


def pipeline_from_components(components: dict[str, Any]) -> StableDiffusionPipeline:
    """Assemble a ``StableDiffusionPipeline`` (no safety checker) from tiny components."""
    pipe = StableDiffusionPipeline(
        vae=components["vae"],
        text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"],
        unet=components["unet"],
        scheduler=components["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """An untrained tiny ``StableDiffusionPipeline`` initialised from ``seed``."""
    return pipeline_from_components(build_tiny_components(seed))

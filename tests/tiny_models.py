"""Small models of the SD 2.x and SDXL families, and their original (ldm) single-file layout.

The SDXL pipeline has SDXL's structure: two text encoders (``CLIPTextModel`` and
``CLIPTextModelWithProjection``) whose penultimate states are concatenated as the UNet's
context, the pooled projection and six size/crop numbers as ``text_time`` conditioning, a
first block without attention and two transformer layers per block further down. The SD 2.x
text encoder is OpenCLIP-shaped (GELU). ``ldm_state_dict`` writes a pipeline's weights under
the names of the original checkpoints (``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.*`` / ``conditioner.embedders.*``), which diffusers' ``from_single_file``
converts back; the tests check that the round trip is exact.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from t2i_bench.generation.kohya_names import ldm_names
from t2i_bench.generation.tiny import (
    SCHEDULER_CONFIG,
    TEXT_CONFIG,
    UNET_CONFIG,
    VAE_CONFIG,
    build_tiny_tokenizer,
    pipeline_from_components,
)

SDXL_UNET = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 2,
    "transformer_layers_per_block": (1, 2),
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "cross_attention_dim": 32 + 48,  # text encoder 1 + text encoder 2 widths
    "norm_num_groups": 8,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 48 + 6 * 8,  # pooled text + 6 size numbers
}
# the second encoder is wider than the first, as OpenCLIP bigG (1280) is than CLIP-L (768)
SDXL_TEXT_2 = {
    **TEXT_CONFIG,
    "hidden_size": 48,
    "intermediate_size": 96,
    "projection_dim": 48,
    "hidden_act": "gelu",  # OpenCLIP uses GELU
}
SD2_UNET = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "cross_attention_dim": 32,
    "norm_num_groups": 8,
}


def _init(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.eval()


def build_tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """An untrained tiny ``StableDiffusionXLPipeline`` (64x64 images)."""
    pipe = StableDiffusionXLPipeline(
        vae=_init(seed, lambda: AutoencoderKL(**VAE_CONFIG)),
        text_encoder=_init(seed + 1, lambda: CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))),
        text_encoder_2=_init(
            seed + 2, lambda: CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_2))
        ),
        tokenizer=build_tiny_tokenizer(),
        tokenizer_2=build_tiny_tokenizer(),
        unet=_init(seed + 3, lambda: UNet2DConditionModel(**SDXL_UNET)),
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_sd2_pipeline(seed: int = 0, prediction_type: str = "v_prediction"):
    """An untrained tiny SD 2.x-like ``StableDiffusionPipeline`` (OpenCLIP-shaped text
    encoder, linear projections, per-block head counts)."""
    return pipeline_from_components(
        {
            "vae": _init(seed, lambda: AutoencoderKL(**VAE_CONFIG)),
            "text_encoder": _init(
                seed + 1, lambda: CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG, hidden_act="gelu"))
            ),
            "tokenizer": build_tiny_tokenizer(),
            "unet": _init(seed + 3, lambda: UNet2DConditionModel(**SD2_UNET)),
            "scheduler": DDIMScheduler(**{**SCHEDULER_CONFIG, "prediction_type": prediction_type}),
        }
    )


def build_tiny_sd1_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """The tiny SD 1.x pipeline without its extra pooled-text conditioning (which SD 1.x and
    its single-file layout do not have)."""
    unet_config = {k: v for k, v in UNET_CONFIG.items() if not k.startswith("addition_embed_type")}
    return pipeline_from_components(
        {
            "vae": _init(seed, lambda: AutoencoderKL(**VAE_CONFIG)),
            "text_encoder": _init(seed + 1, lambda: CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))),
            "tokenizer": build_tiny_tokenizer(),
            "unet": _init(seed + 3, lambda: UNet2DConditionModel(**unet_config)),
            "scheduler": DDIMScheduler(**SCHEDULER_CONFIG),
        }
    )


def build_tiny(family: str, seed: int = 0):
    return {
        "sd1": build_tiny_sd1_pipeline,
        "sd2": build_tiny_sd2_pipeline,
        "sdxl": build_tiny_sdxl_pipeline,
    }[family](seed)


# -- the original (ldm) single-file layout ----------------------------------------------------
def _unet_ldm(unet) -> dict[str, torch.Tensor]:
    names = ldm_names(unet)
    out = {}
    for key, value in unet.state_dict().items():
        module, _, param = key.rpartition(".")
        out[f"model.diffusion_model.{names[module]}.{param}"] = value
    return out


_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _vae_ldm(vae) -> dict[str, torch.Tensor]:
    levels = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        module, _, param = key.rpartition(".")
        parts = module.split(".")
        coder = parts[0]
        if module in ("quant_conv", "post_quant_conv"):
            name = module
        elif parts[1] in ("conv_in", "conv_out"):
            name = module
        elif parts[1] == "conv_norm_out":
            name = f"{coder}.norm_out"
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                name = f"{coder}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
            else:  # attentions.0.<part>: 1x1 convolutions in ldm
                name = f"{coder}.mid.attn_1.{_VAE_ATTENTION['.'.join(parts[4:])]}"
                value = value.reshape(*value.shape, 1, 1) if value.ndim == 2 else value
        else:  # down_blocks.i / up_blocks.i (the decoder's levels are numbered bottom-up)
            i = int(parts[2])
            level = f"down.{i}" if coder == "encoder" else f"up.{levels - 1 - i}"
            if parts[3] == "resnets":
                rest = _VAE_RESNET.get(parts[5], parts[5])
                name = f"{coder}.{level}.block.{parts[4]}.{rest}"
            else:
                sampler = "downsample" if parts[3] == "downsamplers" else "upsample"
                name = f"{coder}.{level}.{sampler}.conv"
        out[f"first_stage_model.{name}.{param}"] = value
    return out


def _clip_ldm(encoder, prefix: str) -> dict[str, torch.Tensor]:
    """A HF CLIP text model under ``prefix`` with transformers 4's ``text_model.`` level."""
    out = {}
    for key, value in encoder.state_dict().items():
        if not key.startswith(("text_model.", "text_projection")):
            key = f"text_model.{key}"
        out[prefix + key] = value
    return out


def _open_clip_ldm(encoder, prefix: str) -> dict[str, torch.Tensor]:
    """A HF CLIP text model in OpenCLIP's names: fused qkv, ``resblocks``, ``ln_final``."""
    state = {k.removeprefix("text_model."): v for k, v in encoder.state_dict().items()}
    out = {
        "token_embedding.weight": state["embeddings.token_embedding.weight"],
        "positional_embedding": state["embeddings.position_embedding.weight"],
        "ln_final.weight": state["final_layer_norm.weight"],
        "ln_final.bias": state["final_layer_norm.bias"],
    }
    if "text_projection.weight" in state:
        out["text_projection"] = state["text_projection.weight"].T.contiguous()
    for i in range(encoder.config.num_hidden_layers):
        layer, block = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for part in ("weight", "bias"):
            out[f"{block}attn.in_proj_{part}"] = torch.cat(
                [state[f"{layer}self_attn.{p}_proj.{part}"] for p in "qkv"]
            )
            out[f"{block}attn.out_proj.{part}"] = state[f"{layer}self_attn.out_proj.{part}"]
            out[f"{block}ln_1.{part}"] = state[f"{layer}layer_norm1.{part}"]
            out[f"{block}ln_2.{part}"] = state[f"{layer}layer_norm2.{part}"]
            out[f"{block}mlp.c_fc.{part}"] = state[f"{layer}mlp.fc1.{part}"]
            out[f"{block}mlp.c_proj.{part}"] = state[f"{layer}mlp.fc2.{part}"]
    return {prefix + k: v for k, v in out.items()}


def ldm_state_dict(pipe, family: str) -> dict[str, torch.Tensor]:
    """The pipeline's weights in the original single-file layout of ``family``."""
    out = {**_unet_ldm(pipe.unet), **_vae_ldm(pipe.vae)}
    if family == "sd1":
        out.update(_clip_ldm(pipe.text_encoder, "cond_stage_model.transformer."))
    elif family == "sd2":
        out.update(_open_clip_ldm(pipe.text_encoder, "cond_stage_model.model."))
    else:
        out.update(_clip_ldm(pipe.text_encoder, "conditioner.embedders.0.transformer."))
        out.update(_open_clip_ldm(pipe.text_encoder_2, "conditioner.embedders.1.model."))
    return {k: v.detach().clone().contiguous() for k, v in out.items()}

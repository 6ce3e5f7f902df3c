"""Write real LyCORIS/kohya adapter files against a pipeline, with non-zero random weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def write_lycoris_file(
    pipe,
    path: Path,
    algo: str = "lora",
    seed: int = 0,
    dim: int = 4,
    preset: str = "attn-mlp",
    **kwargs,
) -> Path:
    """Create a network with lycoris-lora's kohya wrapper, randomise it, save it, restore."""
    import lycoris.kohya as lk

    torch.manual_seed(seed)
    network = lk.create_network(
        1.0, dim, dim, None, pipe.text_encoder, pipe.unet, algo=algo, preset=preset, **kwargs
    )
    network.apply_to(pipe.text_encoder, pipe.unet, True, True)
    with torch.no_grad():
        for param in network.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    metadata = {
        "ss_network_module": "lycoris.kohya",
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(dim),
        "ss_network_args": json.dumps({"algo": algo, "preset": preset, **kwargs}),
        "ss_learning_rate": "0.001",
        "ss_epoch": "3",
        "ss_seed": str(seed),
    }
    network.save_weights(str(path), torch.float32, metadata)
    network.restore()
    return path


def write_peft_lora(folder: Path, seed: int = 0) -> Path:
    """A diffusers/PEFT LoRA (``pytorch_lora_weights.safetensors``) for the tiny pipeline."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    from t2i_bench.generation.tiny import build_tiny_pipeline

    source = build_tiny_pipeline(0)
    torch.manual_seed(seed)
    unet_targets = ["to_k", "to_q", "to_v", "to_out.0"]
    text_targets = ["q_proj", "k_proj", "v_proj", "out_proj"]
    source.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=unet_targets))
    source.text_encoder.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=text_targets))
    with torch.no_grad():
        for model in (source.unet, source.text_encoder):
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.add_(torch.randn_like(param) * 0.3)
    StableDiffusionPipeline.save_lora_weights(
        str(folder),
        unet_lora_layers=get_peft_model_state_dict(source.unet),
        text_encoder_lora_layers=get_peft_model_state_dict(source.text_encoder),
    )
    return folder / "pytorch_lora_weights.safetensors"


def write_full_finetune(folder: Path, seed: int = 0) -> Path:
    """A DreamBooth-style full fine-tune of the tiny pipeline, saved as a diffusers folder."""
    from t2i_bench.generation.tiny import build_tiny_pipeline

    tuned = build_tiny_pipeline(0)
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in tuned.unet.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    tuned.save_pretrained(str(folder))
    return folder

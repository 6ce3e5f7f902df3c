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


# -- files in the exact layouts training tools write -------------------------------------------
def randomise_lora(*models, scale: float = 0.3, seed: int = 0) -> None:
    """Give PEFT LoRA layers non-zero random up/B weights (they start at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for model in models:
            for name, param in model.named_parameters():
                if "lora_B" in name or "lora_A" in name:
                    noise = torch.randn(param.shape, generator=generator) * scale
                    param.add_(noise.to(param))


def accelerate_checkpoint(folder: Path, models: list, save_hook) -> Path:
    """``accelerator.save_state(folder)`` with a save-model pre-hook, as diffusers' training
    scripts write ``checkpoint-N/``: the hook writes the models, accelerate the optimizer,
    LR scheduler and random states beside them."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    params = [p for m in models for p in m.parameters() if p.requires_grad] or [
        torch.nn.Parameter(torch.zeros(1))
    ]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    prepared = accelerator.prepare(*models, optimizer, scheduler)
    handle = accelerator.register_save_state_pre_hook(save_hook)
    try:
        accelerator.save_state(str(folder))
    finally:
        handle.remove()
    del prepared
    return folder


def write_dreambooth_checkpoint(folder: Path, seed: int = 0, train_text_encoder: bool = True):
    """``checkpoint-N/`` of diffusers' ``train_dreambooth.py``: ``unet/`` (and
    ``text_encoder/``) written by its save-model hook, beside accelerate's state files.
    Returns the folder and the fine-tuned pipeline (the reference for its images)."""
    from tiny_models import build_tiny

    tuned = build_tiny("sd1", 0)
    generator = torch.Generator().manual_seed(seed)
    trained = [tuned.unet] + ([tuned.text_encoder] if train_text_encoder else [])
    with torch.no_grad():
        for model in trained:
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * 0.02)
    unet_type = type(tuned.unet)

    def save_model_hook(models, weights, output_dir):  # as in train_dreambooth.py
        for model in models:
            sub_dir = "unet" if isinstance(model, unet_type) else "text_encoder"
            model.save_pretrained(str(Path(output_dir) / sub_dir))
            weights.pop()

    accelerate_checkpoint(folder, trained, save_model_hook)
    return folder, tuned


def _lora_pipeline(family: str, seed: int, rank: int, alpha: int, text_encoders: bool):
    """A tiny pipeline of ``family`` with PEFT LoRA layers added as diffusers' LoRA scripts
    add them (attention projections of the UNet and text encoders), randomised."""
    from peft import LoraConfig
    from tiny_models import build_tiny

    pipe = build_tiny(family, 0)
    pipe.unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=alpha,
            init_lora_weights="gaussian",
            target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        )
    )
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    if text_encoders:
        for encoder in encoders:
            encoder.add_adapter(
                LoraConfig(
                    r=rank,
                    lora_alpha=alpha,
                    init_lora_weights="gaussian",
                    target_modules=["q_proj", "k_proj", "v_proj", "out_proj"],
                )
            )
    randomise_lora(pipe.unet, *encoders, seed=seed)
    return pipe


def diffusers_lora_layers(pipe, text_encoders: bool = True) -> dict:
    """The ``*_lora_layers`` arguments diffusers' scripts pass to ``save_lora_weights``:
    ``convert_state_dict_to_diffusers(get_peft_model_state_dict(model))`` per model."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import get_peft_model_state_dict

    def layers(model):
        return convert_state_dict_to_diffusers(get_peft_model_state_dict(model))

    out = {"unet_lora_layers": layers(pipe.unet)}
    if text_encoders:
        out["text_encoder_lora_layers"] = layers(pipe.text_encoder)
        if getattr(pipe, "text_encoder_2", None) is not None:
            out["text_encoder_2_lora_layers"] = layers(pipe.text_encoder_2)
    return out


def write_diffusers_lora(folder: Path, family: str = "sd1", seed: int = 0, text_encoders=True):
    """``pytorch_lora_weights.safetensors`` as ``train_dreambooth_lora.py`` (SD 1.x/2.x) and
    ``train_dreambooth_lora_sdxl.py`` / ``train_text_to_image_lora_sdxl.py`` (SDXL) save it
    at the end of training. Returns the file and the adapted pipeline (the reference)."""
    pipe = _lora_pipeline(family, seed, rank=4, alpha=4, text_encoders=text_encoders)
    type(pipe).save_lora_weights(str(folder), **diffusers_lora_layers(pipe, text_encoders))
    return folder / "pytorch_lora_weights.safetensors", pipe


def write_diffusers_lora_checkpoint(folder: Path, seed: int = 0):
    """``checkpoint-N/`` of ``train_dreambooth_lora.py``: its save-model hook writes
    ``pytorch_lora_weights.safetensors``; accelerate adds its state files."""
    pipe = _lora_pipeline("sd1", seed, rank=4, alpha=4, text_encoders=True)

    def save_model_hook(models, weights, output_dir):  # as in train_dreambooth_lora.py
        type(pipe).save_lora_weights(output_dir, **diffusers_lora_layers(pipe))
        while weights:
            weights.pop()

    accelerate_checkpoint(folder, [pipe.unet, pipe.text_encoder], save_model_hook)
    return folder, pipe


def write_peft_folder(folder: Path, seed: int = 0, text_encoder: bool = True):
    """PEFT's ``examples/lora_dreambooth/train_dreambooth.py`` output: ``get_peft_model`` on
    the UNet (r=8, lora_alpha=32, targets to_q/to_v/query/value) and the text encoder
    (q_proj/v_proj), each saved with ``save_pretrained`` into ``unet/`` and
    ``text_encoder/``. Returns the folder and the pipeline with the adapters active."""
    from peft import LoraConfig, get_peft_model
    from tiny_models import build_tiny

    pipe = build_tiny("sd1", 0)
    unet = get_peft_model(
        pipe.unet,
        LoraConfig(r=8, lora_alpha=32, target_modules=["to_q", "to_v", "query", "value"]),
    )
    models = [unet]
    if text_encoder:
        te = get_peft_model(
            pipe.text_encoder, LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"])
        )
        models.append(te)
    randomise_lora(*models, scale=0.1, seed=seed)
    unet.save_pretrained(str(folder / "unet"))
    if text_encoder:
        te.save_pretrained(str(folder / "text_encoder"))
    return folder, pipe  # the PEFT models wrap pipe.unet / pipe.text_encoder in place


def write_a1111_embedding(path: Path, vectors: torch.Tensor, name: str, step: int = 500):
    """An AUTOMATIC1111 textual-inversion ``.pt`` exactly as its ``Embedding.save`` writes
    it (modules/textual_inversion/textual_inversion.py): the trained vectors (a leaf tensor
    that requires grad) under ``string_to_param['*']``."""
    vec = vectors.detach().clone().requires_grad_(True)
    torch.save(
        {
            "string_to_token": {"*": 265},
            "string_to_param": {"*": vec},
            "name": name,
            "step": step,
            "sd_checkpoint": "a1b2c3d4",
            "sd_checkpoint_name": "v1-5-pruned-emaonly",
        },
        path,
    )
    return path


def write_kohya_embedding(path: Path, vectors: torch.Tensor, clip_g: torch.Tensor | None = None):
    """sd-scripts' ``train_textual_inversion.py`` (``{"emb_params": …}``) or, with ``clip_g``,
    ``sdxl_train_textual_inversion.py`` (``{"clip_l": …, "clip_g": …}``) safetensors."""
    from safetensors.torch import save_file

    if clip_g is None:
        state = {"emb_params": vectors.contiguous()}
    else:
        state = {"clip_l": vectors.contiguous(), "clip_g": clip_g.contiguous()}
    save_file(state, str(path), {"ss_output_name": path.stem})
    return path


def write_kohya_lora(pipe, path: Path, rank: int = 4, alpha: float = 2.0, seed: int = 0):
    """A LoRA in the layout sd-scripts' ``networks/lora.py`` writes: modules of
    ``Transformer2DModel`` in the UNet and of ``CLIPAttention``/``CLIPMLP`` in the text
    encoder(s), each with ``lora_down.weight``, ``lora_up.weight`` and a scalar ``alpha``,
    in float16, with ``ss_*`` metadata. For SDXL (``sdxl_train_network.py``) the UNet is
    named after the original ldm UNet (``lora_unet_input_blocks_4_1_…``) and the encoders
    ``lora_te1_text_model_…``/``lora_te2_text_model_…``; for SD 1.x after the diffusers UNet
    (``lora_unet_down_blocks_0_attentions_0_…``) and ``lora_te_text_model_…``."""
    from safetensors.torch import save_file

    from t2i_bench.generation.kohya_names import ldm_names

    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def add(name: str, module) -> None:
        if isinstance(module, torch.nn.Linear):
            down = (rank, module.in_features)
            up = (module.out_features, rank)
        elif isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1):
            down = (rank, module.in_channels, 1, 1)
            up = (module.out_channels, rank, 1, 1)
        else:
            return
        key = name.replace(".", "_")
        state[f"{key}.lora_down.weight"] = torch.randn(down, generator=generator) * 0.3
        state[f"{key}.lora_up.weight"] = torch.randn(up, generator=generator) * 0.3
        state[f"{key}.alpha"] = torch.tensor(float(alpha))

    xl = getattr(pipe, "text_encoder_2", None) is not None
    to_ldm = ldm_names(pipe.unet) if xl else {}
    for name, module in pipe.unet.named_modules():
        if type(module).__name__ == "Transformer2DModel":
            for child, sub in module.named_modules():
                if child:
                    full = f"{name}.{child}"
                    add(f"lora_unet.{to_ldm.get(full, full)}", sub)
    encoders = [("lora_te", pipe.text_encoder)]
    if xl:
        encoders = [("lora_te1", pipe.text_encoder), ("lora_te2", pipe.text_encoder_2)]
    for prefix, encoder in encoders:
        for name, module in encoder.named_modules():
            if type(module).__name__ in ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"):
                # transformers 4's names (sd-scripts' SDXL text encoders): text_model.encoder…
                full = name if name.startswith("text_model.") else f"text_model.{name}"
                for child, sub in module.named_modules():
                    if child:
                        add(f"{prefix}.{full}.{child}", sub)
    state = {k: v.to(torch.float16) for k, v in state.items()}
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": "sdxl_base_v1-0" if xl else "sd_v1",
        "ss_sd_model_name": "sd_xl_base_1.0.safetensors",
        "ss_sd_model_hash": "31e35c80",
        "ss_learning_rate": "0.0001",
        "ss_epoch": "2",
    }
    save_file(state, str(path), metadata)
    return path

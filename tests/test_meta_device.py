"""Checkpoints applied to SD 1.5- and SDXL-sized pipelines on the ``meta`` device.

The components are built from the published configs (tests/data) on ``meta``: no weights,
no memory. Files are written on the CPU in each tool's layout, as on a real machine; after
applying one, every parameter and buffer must sit on the pipeline's device (a module left on
the CPU is the bug that fails on a GPU with "expected all tensors to be on the same
device"), and the UNet and text encoders must still run there; after removal likewise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from adapter_files import write_kohya_embedding, write_kohya_lora
from safetensors.torch import save_file

from t2i_bench.generation.adapters import AdapterSwitcher
from t2i_bench.generation.tiny import build_tiny_tokenizer

DATA = Path(__file__).parent / "data"
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _config(name: str) -> dict:
    config = json.loads((DATA / f"{name}.json").read_text())
    config.pop("_note")
    return config


def _pipeline(family: str):
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        te = CLIPTextModel(CLIPTextConfig(**_config("clip_l_text")))
        vae = AutoencoderKL()
        if family == "sd15":
            unet = UNet2DConditionModel(**_config("sd15_unet"))
            pipe = StableDiffusionPipeline(
                vae=vae,
                text_encoder=te,
                tokenizer=build_tiny_tokenizer(),
                unet=unet,
                scheduler=DDIMScheduler(),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        else:
            te2 = CLIPTextModelWithProjection(CLIPTextConfig(**_config("clip_bigg_text")))
            unet = UNet2DConditionModel(**_config("sdxl_unet"))
            pipe = StableDiffusionXLPipeline(
                vae, te, te2, build_tiny_tokenizer(), build_tiny_tokenizer(), unet, DDIMScheduler()
            )
    return pipe


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def pipe(request):
    return _pipeline(request.param)


def _encoders(pipe) -> list:
    return [pipe.text_encoder] + ([pipe.text_encoder_2] if hasattr(pipe, "text_encoder_2") else [])


def _off_meta(pipe, switcher=None) -> list[str]:
    """Tensors of the pipeline's components, and of a LyCORIS network wrapping their
    forwards (not a submodule of them), that are not on meta."""
    out = []
    network = getattr(switcher, "network", None)
    for name in ("unet", "text_encoder", "text_encoder_2", "network"):
        module = network if name == "network" else getattr(pipe, name, None)
        if module is None:
            continue
        tensors = [*module.named_parameters(), *module.named_buffers()]
        out += [f"{name}.{n}" for n, t in tensors if t.device.type != "meta"]
    return out


def _forward(pipe) -> None:
    """The UNet and text encoders run on meta inputs (elementwise ops refuse mixed devices)."""
    meta = torch.device("meta")
    ids = torch.zeros(1, 77, dtype=torch.long, device=meta)
    states = [enc(ids, output_hidden_states=True).hidden_states[-2] for enc in _encoders(pipe)]
    context = torch.cat(states, dim=-1)
    sample = torch.empty(1, 4, 64, 64, device=meta)
    extra = {}
    if len(states) == 2:
        pooled = torch.empty(1, pipe.text_encoder_2.config.projection_dim, device=meta)
        extra = {
            "added_cond_kwargs": {"text_embeds": pooled, "time_ids": torch.empty(1, 6, device=meta)}
        }
    out = pipe.unet(sample, torch.tensor(10, device=meta), context, **extra).sample
    assert out.shape == sample.shape and out.device == meta


def _lora_state(pipe, fmt: str, rank: int = 1) -> dict[str, torch.Tensor]:
    """LoRA tensors (CPU) for the attention projections, named as diffusers' LoRA scripts
    write them (``unet.<module>.lora.down.weight``, ``text_encoder.<module>.
    lora_linear_layer.down.weight``) or as PEFT does
    (``base_model.model.<module>.lora_A.weight``, UNet only)."""
    out = {}
    components = [("unet", pipe.unet, UNET_TARGETS)]
    if fmt == "diffusers":
        names = ["text_encoder", "text_encoder_2"][: len(_encoders(pipe))]
        components += [(n, e, TEXT_TARGETS) for n, e in zip(names, _encoders(pipe), strict=True)]
    for prefix, model, targets in components:
        for name, module in model.named_modules():
            if not name.endswith(targets) or not isinstance(module, torch.nn.Linear):
                continue
            a = torch.randn(rank, module.in_features) * 0.01
            b = torch.randn(module.out_features, rank) * 0.01
            if fmt == "diffusers" and prefix == "unet":
                out[f"{prefix}.{name}.lora.down.weight"] = a
                out[f"{prefix}.{name}.lora.up.weight"] = b
            elif fmt == "diffusers":
                out[f"{prefix}.{name}.lora_linear_layer.down.weight"] = a
                out[f"{prefix}.{name}.lora_linear_layer.up.weight"] = b
            else:
                out[f"base_model.model.{name}.lora_A.weight"] = a
                out[f"base_model.model.{name}.lora_B.weight"] = b
    return out


def _write(pipe, fmt: str, folder: Path) -> Path:
    if fmt == "kohya":
        return write_kohya_lora(pipe, folder / "kohya.safetensors", rank=1)
    if fmt == "diffusers_lora":
        path = folder / "pytorch_lora_weights.safetensors"
        save_file(_lora_state(pipe, "diffusers"), str(path))
        return path
    if fmt == "peft":
        from peft import LoraConfig

        (folder / "unet").mkdir()
        LoraConfig(r=1, lora_alpha=4, target_modules=list(UNET_TARGETS)).save_pretrained(
            folder / "unet"
        )
        save_file(_lora_state(pipe, "peft"), str(folder / "unet" / "adapter_model.safetensors"))
        return folder
    widths = [e.get_input_embeddings().weight.shape[1] for e in _encoders(pipe)]
    vectors = [torch.randn(2, w) for w in widths]
    return write_kohya_embedding(folder / "zyx.safetensors", *vectors)


@pytest.mark.parametrize("fmt", ["kohya", "diffusers_lora", "peft", "embedding"])
def test_checkpoints_stay_on_the_pipeline_device(
    pipe, fmt: str, tmp_path: Path, monkeypatch
) -> None:
    if fmt == "embedding":
        # transformers fills new token rows with the mean of the old ones after a
        # positive-definiteness check that needs values; diffusers overwrites those rows
        # with the embedding right after, so the meta run skips only that initialisation
        from transformers import PreTrainedModel

        monkeypatch.setattr(
            PreTrainedModel, "_init_added_embeddings_weights_with_mean", lambda *a, **k: None
        )
    path = _write(pipe, fmt, tmp_path)
    switcher = AdapterSwitcher(pipe)
    switcher.apply(path, 0.8 if fmt != "embedding" else 1.0)
    assert _off_meta(pipe, switcher) == []
    _forward(pipe)
    # diffusers' unload_textual_inversion builds the trimmed embedding on the default device
    # and assigns the encoder's rows to it, which a GPU allows and meta does not
    with torch.device("meta" if fmt == "embedding" else "cpu"):
        switcher.remove()
    assert _off_meta(pipe) == []
    _forward(pipe)

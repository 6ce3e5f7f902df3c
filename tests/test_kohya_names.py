"""kohya module names against the real SD 1.5 and SDXL architectures (meta device, no weights).

Counts come from sd-scripts' own logs: a kohya LoRA wraps 192 UNet + 72 text-encoder
modules on SD 1.5 and 722 UNet + 72 + 192 text-encoder modules on SDXL. lycoris-lora 4.1's
``attn-mlp`` preset adds the 2 (SD 1.5) or 4 (SDXL) time/add-embedding linears, and its
``attn-only`` preset targets ``CrossAttention`` classes that current diffusers UNets no longer
have, so it wraps text-encoder attention only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from adapter_files import write_lycoris_file
from safetensors.torch import load_file, save_file

from t2i_bench.config import SamplerConfig
from t2i_bench.generation.adapters import AdapterSwitcher, _module_names
from t2i_bench.generation.kohya_names import kohya_ldm_to_diffusers, ldm_names
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.generation.render import render_batch

DATA = Path(__file__).parent / "data"
SD_FULL = DATA / "sd_full_preset.toml"


def _config(name: str) -> dict:
    config = json.loads((DATA / f"{name}.json").read_text())
    config.pop("_note")
    return config


@pytest.fixture(scope="module")
def models():
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        return {
            "sd15": UNet2DConditionModel(**_config("sd15_unet")),
            "sdxl": UNet2DConditionModel(**_config("sdxl_unet")),
            "te": CLIPTextModel(CLIPTextConfig(**_config("clip_l_text"))),
            "te2": CLIPTextModelWithProjection(CLIPTextConfig(**_config("clip_bigg_text"))),
        }


def _network(unet, text_encoder, preset: str, algo: str = "lora"):
    import lycoris.kohya as lk

    logging.getLogger("LyCORIS").setLevel(logging.ERROR)
    with torch.device("meta"):
        return lk.create_network(1.0, 4, 4, None, text_encoder, unet, algo=algo, preset=preset)


@pytest.mark.parametrize(
    ("arch", "preset", "unet_count", "te_count"),
    [
        ("sd15", "attn-only", 0, 48),
        ("sd15", "attn-mlp", 194, 72),
        ("sd15", str(SD_FULL), 282, 72),
        ("sdxl", "attn-only", 0, 48 + 128),
        ("sdxl", "attn-mlp", 726, 72 + 192),
        ("sdxl", str(SD_FULL), 792, 72 + 192),
    ],
)
def test_every_key_maps_and_counts_per_preset(models, arch, preset, unet_count, te_count):
    unet = models[arch]
    encoders = [models["te"], models["te2"]] if arch == "sdxl" else models["te"]
    network = _network(unet, encoders, preset, algo="locon")
    names = [m.lora_name for m in network.unet_loras]
    assert len(names) == unet_count and len(network.text_encoder_loras) == te_count
    attn_mlp = [n for n in names if "time_embedding" not in n and "add_embedding" not in n]
    if preset == "attn-mlp":
        assert len(attn_mlp) == {"sd15": 192, "sdxl": 722}[arch]  # sd-scripts' counts
    pipe = type("Pipe", (), {"unet": unet, "text_encoder": models["te"]})()
    if arch == "sdxl":
        pipe.text_encoder_2 = models["te2"]
    known = _module_names(pipe)
    te_names = [m.lora_name for m in network.text_encoder_loras]
    assert set(names + te_names) <= known
    if arch == "sdxl":  # SDXL files name the UNet in ldm style: every such name maps back
        to_diffusers = kohya_ldm_to_diffusers(unet)
        from_diffusers = {v: k for k, v in to_diffusers.items()}
        ldm_keys = [from_diffusers[n] for n in names]
        assert len(set(ldm_keys)) == len(names)
        assert all(to_diffusers[k] in known for k in ldm_keys)


@pytest.mark.parametrize(
    ("ldm", "diffusers"),
    [  # names as they appear in SDXL LoRA/LoCon files written by sd-scripts
        (
            "input_blocks.4.1.transformer_blocks.0.attn1.to_q",
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
        ),
        (
            "input_blocks.7.1.transformer_blocks.9.ff.net.2",
            "down_blocks.2.attentions.0.transformer_blocks.9.ff.net.2",
        ),
        ("middle_block.1.proj_in", "mid_block.attentions.0.proj_in"),
        ("middle_block.2.out_layers.3", "mid_block.resnets.1.conv2"),
        (
            "output_blocks.0.1.transformer_blocks.0.attn2.to_k",
            "up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
        ),
        ("output_blocks.5.1.proj_out", "up_blocks.1.attentions.2.proj_out"),
        ("output_blocks.2.2.conv", "up_blocks.0.upsamplers.0.conv"),
        ("output_blocks.8.0.skip_connection", "up_blocks.2.resnets.2.conv_shortcut"),
        ("input_blocks.1.0.in_layers.2", "down_blocks.0.resnets.0.conv1"),
        ("input_blocks.3.0.op", "down_blocks.0.downsamplers.0.conv"),
        ("input_blocks.0.0", "conv_in"),
        ("label_emb.0.0", "add_embedding.linear_1"),
        ("time_embed.2", "time_embedding.linear_2"),
        ("out.2", "conv_out"),
    ],
)
def test_known_sdxl_names(models, ldm: str, diffusers: str) -> None:
    assert ldm_names(models["sdxl"])[diffusers] == ldm


def test_ldm_named_file_gives_the_same_image(tmp_path: Path) -> None:
    pipe = load_base_pipeline("tiny", seed=0)
    sampler = SamplerConfig(steps=2, guidance_scale=3.0, width=64, height=64)
    diffusers_file = write_lycoris_file(pipe, tmp_path / "d.safetensors", algo="loha")
    back = {v: k for k, v in kohya_ldm_to_diffusers(pipe.unet).items()}
    renamed = {}
    for key, value in load_file(str(diffusers_file)).items():
        module, _, rest = key.partition(".")
        renamed[f"{back.get(module, module)}.{rest}"] = value
    assert any(k.startswith("lora_unet_input_blocks_") for k in renamed)
    ldm_file = tmp_path / "ldm.safetensors"
    save_file(renamed, str(ldm_file))
    switcher = AdapterSwitcher(pipe)
    images = []
    for path in (diffusers_file, ldm_file):
        switcher.apply(path)
        images.append(np.asarray(render_batch(pipe, ["a zyx toy"], [0], sampler)[0]))
    switcher.remove()
    assert np.array_equal(images[0], images[1])

"""Checkpoint formats in the exact on-disk layouts training tools write, applied to tiny
pipelines of the same family (SD 1.x, SDXL).

Each file is written the way its tool writes it (see adapter_files.py) from a pipeline whose
adapter is live; the image rendered after applying the file to a clean base must be that
pipeline's image (the tool's own result), bitwise where the same arithmetic runs, and
removing it (or multiplier 0) must give the base image bitwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from adapter_files import (
    write_a1111_embedding,
    write_diffusers_lora,
    write_diffusers_lora_checkpoint,
    write_dreambooth_checkpoint,
    write_kohya_embedding,
    write_kohya_lora,
    write_peft_folder,
)
from safetensors.torch import load_file, save_file
from tiny_models import build_tiny

from t2i_bench.checkpoints import describe_checkpoint
from t2i_bench.config import SamplerConfig
from t2i_bench.errors import BenchError
from t2i_bench.generation.adapters import AdapterSwitcher
from t2i_bench.generation.formats import Format, checkpoint_files, detect_format
from t2i_bench.generation.render import render_batch

SAMPLER = SamplerConfig(steps=2, guidance_scale=3.0, width=64, height=64)


UNET_TARGETS = (".to_q", ".to_k", ".to_v", ".to_out.0")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def count(model, suffixes: tuple[str, ...]) -> int:
    """Modules of ``model`` whose names end with one of ``suffixes``."""
    return sum(1 for name, _ in model.named_modules() if name.endswith(suffixes))


def pixels(pipe, prompt: str = "a photo of zyx toy") -> np.ndarray:
    return np.asarray(render_batch(pipe, [prompt], [0], SAMPLER)[0]).astype(int)


@pytest.fixture(scope="module")
def sd1():
    return build_tiny("sd1", 0)


@pytest.fixture(scope="module")
def sdxl():
    return build_tiny("sdxl", 0)


def check_applies(base, path: Path, reference: np.ndarray, prompt: str = "a photo of zyx toy"):
    """Applying ``path`` gives ``reference`` bitwise; multiplier 0 and removal give the base."""
    before = pixels(base, prompt)
    assert np.abs(reference - before).mean() > 1.0  # the adapter changes the image
    switcher = AdapterSwitcher(base)
    switcher.apply(path)
    assert np.array_equal(pixels(base, prompt), reference)
    switcher.apply(path, 0.0)
    assert np.array_equal(pixels(base, prompt), before)
    switcher.apply(path)
    switcher.remove()
    assert np.array_equal(pixels(base, prompt), before)


# -- textual inversion -------------------------------------------------------------------
def _reference_embedding(family: str, token: str, clip_l, clip_g=None) -> np.ndarray:
    """The image with the vectors loaded by diffusers' own loader, per text encoder."""
    pipe = build_tiny(family, 0)
    pipe.load_textual_inversion(
        clip_l, token=token, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
    )
    if clip_g is not None:
        pipe.load_textual_inversion(
            clip_g, token=token, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
        )
    return pixels(pipe, f"a photo of {token} toy")


def test_a1111_embedding_pt(sd1, tmp_path: Path) -> None:
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))  # 2 vectors
    path = write_a1111_embedding(tmp_path / "zyxemb.pt", vectors, name="zyxemb")
    with pytest.raises(BenchError, match=r"zyxemb\.pt: pickle checkpoints can run code"):
        detect_format(path)
    assert detect_format(path, allow_pickle=True) is Format.TEXTUAL_INVERSION
    info = describe_checkpoint(path, allow_pickle=True)
    assert (info.format, info.modules) == ("textual_inversion", {"clip_l": 2})
    reference = _reference_embedding("sd1", "zyxemb", vectors)
    vocab = len(sd1.tokenizer)
    switcher = AdapterSwitcher(sd1, allow_pickle=True)
    before = pixels(sd1, "a photo of zyxemb toy")
    switcher.apply(path)  # the token is the file stem, as A1111 binds it
    assert len(sd1.tokenizer) == vocab + 2  # zyxemb, zyxemb_1
    assert np.array_equal(pixels(sd1, "a photo of zyxemb toy"), reference)
    switcher.remove()
    assert len(sd1.tokenizer) == vocab
    assert np.array_equal(pixels(sd1, "a photo of zyxemb toy"), before)
    switcher.apply(path)  # loads again after its removal
    switcher.remove()


def test_kohya_emb_params_safetensors(sd1, tmp_path: Path) -> None:
    vectors = torch.randn(1, 32, generator=torch.Generator().manual_seed(2))
    path = write_kohya_embedding(tmp_path / "qwv.safetensors", vectors)
    assert detect_format(path) is Format.TEXTUAL_INVERSION
    reference = _reference_embedding("sd1", "qwv", vectors)
    switcher = AdapterSwitcher(sd1)
    switcher.apply(path)
    assert np.array_equal(pixels(sd1, "a photo of qwv toy"), reference)
    switcher.remove()


def test_sdxl_embedding_into_both_text_encoders(sd1, sdxl, tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    clip_l, clip_g = torch.randn(2, 32, generator=gen), torch.randn(2, 48, generator=gen)
    path = write_kohya_embedding(tmp_path / "zyxxl.safetensors", clip_l, clip_g)
    assert detect_format(path) is Format.TEXTUAL_INVERSION
    assert describe_checkpoint(path).modules == {"clip_l": 2, "clip_g": 2}
    reference = _reference_embedding("sdxl", "zyxxl", clip_l, clip_g)
    sizes = (len(sdxl.tokenizer), len(sdxl.tokenizer_2))
    before = pixels(sdxl, "a photo of zyxxl toy")
    switcher = AdapterSwitcher(sdxl)
    switcher.apply(path)
    assert np.array_equal(pixels(sdxl, "a photo of zyxxl toy"), reference)
    switcher.remove()
    assert (len(sdxl.tokenizer), len(sdxl.tokenizer_2)) == sizes
    assert np.array_equal(pixels(sdxl, "a photo of zyxxl toy"), before)
    with pytest.raises(BenchError, match=r"zyxxl\.safetensors: an SDXL embedding \(clip_l"):
        AdapterSwitcher(sd1).apply(path)
    single = write_kohya_embedding(tmp_path / "one.safetensors", clip_l)
    with pytest.raises(BenchError, match=r"one\.safetensors: an embedding for one text encoder"):
        AdapterSwitcher(sdxl).apply(single)
    wide = write_kohya_embedding(tmp_path / "wide.safetensors", torch.zeros(1, 768))
    with pytest.raises(BenchError, match=r"wide\.safetensors: embedding clip_l has 768-wide"):
        AdapterSwitcher(sd1).apply(wide)


# -- DreamBooth (full fine-tune) checkpoint-N folders ------------------------------------
@pytest.mark.parametrize("train_text_encoder", [True, False])
def test_dreambooth_checkpoint_folder(sd1, tmp_path: Path, train_text_encoder: bool) -> None:
    folder, tuned = write_dreambooth_checkpoint(
        tmp_path / "checkpoint-500", train_text_encoder=train_text_encoder
    )
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"unet/config.json", "unet/diffusion_pytorch_model.safetensors"} <= names
    assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= names
    assert ("text_encoder/model.safetensors" in names) == train_text_encoder
    assert detect_format(folder) is Format.DIFFUSERS_CHECKPOINT
    hashed = {p.relative_to(folder).parts[0] for p in checkpoint_files(folder)}
    assert hashed == ({"unet", "text_encoder"} if train_text_encoder else {"unet"})
    info = describe_checkpoint(folder)
    assert info.format == "diffusers_checkpoint" and info.hyperparameters["step"] == (
        500,
        "folder name",
    )
    check_applies(sd1, folder, pixels(tuned))


def test_dreambooth_text_encoder_written_by_transformers_4(sd1, tmp_path: Path) -> None:
    """transformers 4 saved ``CLIPTextModel`` weights as ``text_model.encoder…``."""
    folder, tuned = write_dreambooth_checkpoint(tmp_path / "checkpoint-100", seed=1)
    weights = folder / "text_encoder" / "model.safetensors"
    renamed = {f"text_model.{k}": v for k, v in load_file(str(weights)).items()}
    save_file(renamed, str(weights), {"format": "pt"})
    check_applies(sd1, folder, pixels(tuned))


# -- diffusers LoRA (SD 1.x, SDXL), end-of-training files and checkpoint-N folders -------
def test_diffusers_lora_sd1(sd1, tmp_path: Path) -> None:
    path, adapted = write_diffusers_lora(tmp_path, "sd1", seed=4)
    assert detect_format(path) is Format.DIFFUSERS_LORA
    info = describe_checkpoint(path)
    unet, text = count(sd1.unet, UNET_TARGETS), count(sd1.text_encoder, TEXT_TARGETS)
    assert info.modules == {"text_encoder": text, "unet": unet}
    check_applies(sd1, path, pixels(adapted))


def test_diffusers_lora_checkpoint_folder(sd1, tmp_path: Path) -> None:
    folder, adapted = write_diffusers_lora_checkpoint(tmp_path / "checkpoint-200", seed=5)
    assert (folder / "pytorch_lora_weights.safetensors").is_file()
    assert (folder / "optimizer.bin").is_file()
    assert detect_format(folder) is Format.DIFFUSERS_LORA
    assert checkpoint_files(folder) == [folder / "pytorch_lora_weights.safetensors"]
    check_applies(sd1, folder, pixels(adapted))


def test_diffusers_lora_written_by_transformers_4(sd1, tmp_path: Path) -> None:
    path, adapted = write_diffusers_lora(tmp_path, "sd1", seed=6)
    renamed = {
        k.replace("text_encoder.", "text_encoder.text_model.", 1): v
        for k, v in load_file(str(path)).items()
    }
    old = tmp_path / "old.safetensors"
    save_file(renamed, str(old))
    check_applies(sd1, old, pixels(adapted))


def test_sdxl_diffusers_lora(sdxl, tmp_path: Path) -> None:
    path, adapted = write_diffusers_lora(tmp_path, "sdxl", seed=7)
    prefixes = {k.split(".")[0] for k in load_file(str(path))}
    assert prefixes == {"unet", "text_encoder", "text_encoder_2"}
    assert detect_format(path) is Format.DIFFUSERS_LORA
    check_applies(sdxl, path, pixels(adapted))


def test_sdxl_lora_on_sd1_is_one_line(sd1, tmp_path: Path) -> None:
    path, _ = write_diffusers_lora(tmp_path, "sdxl", seed=8)
    with pytest.raises(BenchError) as info:
        AdapterSwitcher(sd1).apply(path)
    message = str(info.value)
    assert message.startswith(f"{path}: diffusers LoRA does not fit the base model: ")
    assert "\n" not in message
    base = pixels(sd1)
    assert np.array_equal(pixels(sd1), base)


# -- PEFT adapters -----------------------------------------------------------------------
def test_peft_folder(sd1, tmp_path: Path) -> None:
    """Both adapters of PEFT's DreamBooth example, with lora_alpha 32 over rank 8 (scale
    4) read from adapter_config.json."""
    folder, adapted = write_peft_folder(tmp_path / "peft-dog", seed=9)
    for sub in ("unet", "text_encoder"):
        assert (folder / sub / "adapter_config.json").is_file()
        keys = list(load_file(str(folder / sub / "adapter_model.safetensors")))
        assert all(k.startswith("base_model.model.") for k in keys)
    assert detect_format(folder) is Format.PEFT
    info = describe_checkpoint(folder)
    assert info.modules == {
        "text_encoder": count(sd1.text_encoder, ("q_proj", "v_proj")),
        "unet": count(sd1.unet, (".to_q", ".to_v")),
    }
    assert info.hyperparameters["algo"] == ("lora", "metadata")
    assert info.hyperparameters["dim"] == (8, "metadata")
    assert info.hyperparameters["alpha"] == (32, "metadata")
    check_applies(sd1, folder, pixels(adapted))
    switcher = AdapterSwitcher(sd1)
    switcher.apply(folder, 0.5)
    half = pixels(sd1)
    switcher.remove()
    assert not np.array_equal(half, pixels(adapted)) and not np.array_equal(half, pixels(sd1))


def test_peft_adapter_model_file(sd1, tmp_path: Path) -> None:
    """``adapter_model.safetensors`` given as a file: its config beside it is read, and the
    component it adapts is found from its tensor names."""
    folder, adapted = write_peft_folder(tmp_path / "peft-unet", seed=10, text_encoder=False)
    path = folder / "unet" / "adapter_model.safetensors"
    assert detect_format(path) is Format.PEFT
    assert describe_checkpoint(path).warnings == []
    check_applies(sd1, path, pixels(adapted))


def test_bare_peft_file_says_alpha_is_assumed(sd1, tmp_path: Path) -> None:
    folder, adapted = write_peft_folder(tmp_path / "peft-bare", seed=11, text_encoder=False)
    bare = tmp_path / "adapter_model.safetensors"
    bare.write_bytes((folder / "unet" / "adapter_model.safetensors").read_bytes())
    assert describe_checkpoint(bare).warnings == [
        "adapter_model.safetensors: no adapter_config.json beside it; lora_alpha is taken "
        "equal to the rank (scale 1.0), as PEFT files do not store it"
    ]
    switcher = AdapterSwitcher(sd1)
    switcher.apply(bare)
    quarter = pixels(sd1)  # scale 1 instead of the trained 4
    switcher.remove()
    assert not np.array_equal(quarter, pixels(adapted))
    assert not np.array_equal(quarter, pixels(sd1))


def test_peft_errors_are_one_line(sd1, sdxl, tmp_path: Path) -> None:
    folder, _ = write_peft_folder(tmp_path / "p", seed=12, text_encoder=False)
    config = folder / "unet" / "adapter_config.json"
    config.write_text("{not json")
    with pytest.raises(BenchError, match=r"adapter_config\.json: unreadable PEFT adapter config"):
        AdapterSwitcher(sd1).apply(folder)
    config.write_text('{"peft_type": "NOT_A_METHOD", "r": 4}')
    with pytest.raises(BenchError, match=r"adapter_config\.json: unsupported PEFT adapter config"):
        AdapterSwitcher(sd1).apply(folder)
    cube = tmp_path / "cube.safetensors"
    save_file({"emb_params": torch.zeros(2, 2, 32)}, str(cube))
    with pytest.raises(
        BenchError, match=r"cube\.safetensors: embedding emb_params is not a vector"
    ):
        AdapterSwitcher(sd1).apply(cube)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchError, match=r"empty: folder is not a checkpoint this tool reads"):
        detect_format(empty)


# -- kohya SDXL LoRA ---------------------------------------------------------------------
def test_kohya_sdxl_lora(sdxl, tmp_path: Path) -> None:
    """sd-scripts' SDXL layout: ldm UNet names, lora_te1/lora_te2 with transformers 4's
    text_model level, float16, scalar alphas. The reference is diffusers' own loader of
    kohya files (another implementation of the same file format)."""
    path = write_kohya_lora(sdxl, tmp_path / "kohya-xl.safetensors", seed=13)
    keys = list(load_file(str(path)))
    assert any(
        k.startswith("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.") for k in keys
    )
    assert any(k.startswith("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.") for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_1_mlp_fc2.") for k in keys)
    assert detect_format(path) is Format.LYCORIS
    info = describe_checkpoint(path)
    assert set(info.modules) == {"lora_unet", "lora_te1", "lora_te2"}
    assert info.modules["lora_te1"] == info.modules["lora_te2"] == 2 * 6  # q k v out fc1 fc2
    reference = build_tiny("sdxl", 0)
    reference.load_lora_weights(str(path), adapter_name="kohya")
    expected = pixels(reference)
    before = pixels(sdxl)
    switcher = AdapterSwitcher(sdxl)
    switcher.apply(path)
    adapted = pixels(sdxl)
    assert np.abs(adapted - before).mean() > 1.0
    assert np.abs(adapted - expected).max() <= 1  # the same LoRA, computed by another library
    switcher.apply(path, 0.0)
    assert np.array_equal(pixels(sdxl), before)
    switcher.remove()
    assert np.array_equal(pixels(sdxl), before)

"""Recognise a checkpoint's format from its tensor names, and read its tensors safely."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from t2i_bench.errors import BenchError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class Format(str, Enum):
    LYCORIS = "lycoris"  # kohya-style names: LoRA/LoCon, LoHa, LoKr, DyLoRA, GLoRA, IA3, OFT, …
    DIFFUSERS_LORA = "diffusers_lora"  # pytorch_lora_weights.safetensors (PEFT / diffusers)
    TEXTUAL_INVERSION = "textual_inversion"
    FULL_SINGLE_FILE = "full_single_file"  # ldm-style full model (model.diffusion_model.*)
    FULL_DIFFUSERS = "full_diffusers"  # a diffusers model folder


def _is_diffusers_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "unet" / "config.json").is_file()


def read_keys(path: Path, allow_pickle: bool = False) -> list[str]:
    """Tensor names in a checkpoint file, without loading the tensors where possible."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return list(load_state_dict(path, allow_pickle))
    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except Exception as exc:
        raise BenchError(f"not a readable safetensors file ({exc})", path) from None


def load_state_dict(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint; pickle files only with ``allow_pickle`` (weights_only)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise BenchError(
                "pickle checkpoints can run code when loaded; convert to .safetensors "
                "or pass --allow-pickle",
                path,
            )
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise BenchError(f"cannot read pickle checkpoint ({exc})", path) from None
        data = data.get("state_dict", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise BenchError("pickle checkpoint holds no tensor dictionary", path)
        return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    try:
        return load_file(str(path))
    except Exception as exc:
        raise BenchError(f"not a readable safetensors file ({exc})", path) from None


def detect_format(path: Path, allow_pickle: bool = False) -> Format:
    """The format of a checkpoint file or folder, from its tensor names."""
    if path.is_dir():
        if _is_diffusers_folder(path):
            return Format.FULL_DIFFUSERS
        raise BenchError("folder is not a diffusers model (no model_index.json)", path)
    keys = read_keys(path, allow_pickle)
    if not keys:
        raise BenchError("checkpoint holds no tensors", path)
    if any(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in keys):
        return Format.LYCORIS
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return Format.FULL_SINGLE_FILE
    lora_marks = (".lora_A.", ".lora_B.", ".lora.down.", ".lora.up.", "lora_linear_layer")
    if any(m in k for k in keys for m in lora_marks):
        return Format.DIFFUSERS_LORA
    if "emb_params" in keys or "string_to_param" in keys or len(keys) <= 2:
        return Format.TEXTUAL_INVERSION
    raise BenchError(
        f"unrecognised checkpoint format ({len(keys)} tensors, e.g. {sorted(keys)[:2]})", path
    )


def textual_inversion_token(path: Path, keys: list[str], explicit: str | None) -> str:
    """The token an embedding binds: given, the tensor's name (diffusers), or the file stem."""
    if explicit:
        return explicit
    named = [k for k in keys if k not in ("emb_params", "string_to_param", "name")]
    return named[0] if len(named) == 1 else path.stem

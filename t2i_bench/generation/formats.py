"""Recognise a checkpoint's format from its files and tensor names, and read it safely.

Every layout here is the one a training tool writes (see docs/models.md): kohya sd-scripts /
LyCORIS files, diffusers LoRA files (``pytorch_lora_weights.safetensors``), PEFT adapters
(``adapter_config.json`` + ``adapter_model.safetensors``), textual-inversion embeddings
(diffusers, A1111 ``.pt``, kohya ``emb_params``, SDXL ``clip_l``/``clip_g``), full diffusers
models, accelerate ``checkpoint-N/`` folders of diffusers' DreamBooth script, and ldm-style
single files. A file that is none of them is one :class:`BenchError` line naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from t2i_bench.errors import BenchError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
LORA_WEIGHT_NAMES = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHT_NAMES = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_PREFIX = "base_model.model."
# components of a diffusers pipeline that checkpoints change, in pipeline attribute names
COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


class Format(str, Enum):
    LYCORIS = "lycoris"  # kohya-style names: LoRA/LoCon, LoHa, LoKr, DyLoRA, GLoRA, IA3, OFT, …
    DIFFUSERS_LORA = "diffusers_lora"  # pytorch_lora_weights.safetensors (diffusers scripts)
    PEFT = "peft"  # PEFT save_pretrained: adapter_config.json + adapter_model.safetensors
    TEXTUAL_INVERSION = "textual_inversion"
    FULL_SINGLE_FILE = "full_single_file"  # ldm-style full model (model.diffusion_model.*)
    FULL_DIFFUSERS = "full_diffusers"  # a diffusers model folder (model_index.json)
    DIFFUSERS_CHECKPOINT = (
        "diffusers_checkpoint"  # accelerate checkpoint-N/: unet/ (+ text_encoder/)
    )


def _load_pickle(path: Path, allow_pickle: bool) -> Any:
    if not allow_pickle:
        raise BenchError(
            "pickle checkpoints can run code when loaded; convert to .safetensors "
            "or pass --allow-pickle",
            path,
        )
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchError(f"cannot read pickle checkpoint ({first})", path) from None


def _tensors(data: Any) -> dict[str, torch.Tensor]:
    data = data.get("state_dict", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def read_keys(path: Path, allow_pickle: bool = False) -> list[str]:
    """Tensor names in a checkpoint file, without loading the tensors where possible."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        data = _load_pickle(path, allow_pickle)
        if isinstance(data, dict) and "string_to_param" in data:
            return ["string_to_param"]
        return list(_tensors(data))
    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except Exception as exc:
        raise BenchError(f"not a readable safetensors file ({exc})", path) from None


def load_state_dict(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint; pickle files only with ``allow_pickle`` (weights_only)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        data = _load_pickle(path, allow_pickle)
        if not isinstance(data, dict):
            raise BenchError("pickle checkpoint holds no tensor dictionary", path)
        return _tensors(data)
    try:
        return load_file(str(path))
    except Exception as exc:
        raise BenchError(f"not a readable safetensors file ({exc})", path) from None


# -- folders ---------------------------------------------------------------------------------
def lora_weights_file(folder: Path) -> Path | None:
    """The diffusers LoRA file of a folder (a LoRA script's output or ``checkpoint-N/``)."""
    return next((folder / n for n in LORA_WEIGHT_NAMES if (folder / n).is_file()), None)


def _peft_weights(folder: Path) -> Path | None:
    return next((folder / n for n in PEFT_WEIGHT_NAMES if (folder / n).is_file()), None)


@dataclass(frozen=True)
class PeftPart:
    """One PEFT adapter: its weights, its config (None for a bare file) and the pipeline
    component it adapts (None: decided from its tensor names)."""

    weights: Path
    config: Path | None
    component: str | None


def peft_parts(path: Path) -> list[PeftPart]:
    """The PEFT adapters of a file or folder.

    A folder holds one adapter (``adapter_config.json`` + ``adapter_model.safetensors``) or,
    as PEFT's DreamBooth example writes, one per component in ``unet/`` and ``text_encoder/``.
    """
    if path.is_file():
        config = path.parent / PEFT_CONFIG
        return [PeftPart(path, config if config.is_file() else None, None)]
    parts = []
    if (path / PEFT_CONFIG).is_file() and (weights := _peft_weights(path)):
        parts.append(PeftPart(weights, path / PEFT_CONFIG, None))
    for component in COMPONENTS:
        sub = path / component
        if (sub / PEFT_CONFIG).is_file() and (weights := _peft_weights(sub)):
            parts.append(PeftPart(weights, sub / PEFT_CONFIG, component))
    return parts


def read_peft_config(part: PeftPart) -> dict[str, Any] | None:
    """The adapter's ``adapter_config.json`` as a dict (None for a bare weights file)."""
    if part.config is None:
        return None
    try:
        data = json.loads(part.config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"unreadable PEFT adapter config ({exc})", part.config) from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise BenchError("not a PEFT adapter config (no peft_type)", part.config)
    return data


def checkpoint_components(folder: Path) -> dict[str, Path]:
    """The component folders of an accelerate ``checkpoint-N/`` of diffusers' DreamBooth
    script (``unet/``, and ``text_encoder/`` when the text encoder was trained)."""
    return {c: folder / c for c in COMPONENTS if (folder / c / "config.json").is_file()}


def _folder_format(path: Path) -> Format:
    if (path / "model_index.json").is_file():
        return Format.FULL_DIFFUSERS
    if lora_weights_file(path) is not None:
        return Format.DIFFUSERS_LORA
    if peft_parts(path):
        return Format.PEFT
    if "unet" in checkpoint_components(path):
        return Format.DIFFUSERS_CHECKPOINT
    raise BenchError(
        "folder is not a checkpoint this tool reads (no model_index.json, unet/config.json, "
        "pytorch_lora_weights.safetensors or adapter_config.json)",
        path,
    )


def checkpoint_files(path: Path) -> list[Path]:
    """The files whose contents determine a checkpoint's effect (hashed for its identity);
    optimizer, scheduler and random states beside them are left out."""
    if path.is_file():
        return [path]
    fmt = _folder_format(path)
    if fmt is Format.DIFFUSERS_LORA:
        return [lora_weights_file(path)]
    if fmt is Format.PEFT:
        return sorted(f for p in peft_parts(path) for f in (p.weights, p.config) if f)
    roots = (
        list(checkpoint_components(path).values()) if fmt is Format.DIFFUSERS_CHECKPOINT else [path]
    )
    files = [f for root in roots for f in root.rglob("*") if f.is_file()]
    return sorted(f for f in files if f.suffix in (".json", ".safetensors", ".bin", ".txt"))


def detect_format(path: Path, allow_pickle: bool = False) -> Format:
    """The format of a checkpoint file or folder, from its files and tensor names."""
    if path.is_dir():
        return _folder_format(path)
    keys = read_keys(path, allow_pickle)
    if not keys:
        raise BenchError("checkpoint holds no tensors", path)
    if any(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in keys):
        return Format.LYCORIS
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return Format.FULL_SINGLE_FILE
    if any(k.startswith(PEFT_PREFIX) for k in keys):
        return Format.PEFT
    lora_marks = (".lora_A.", ".lora_B.", ".lora.down.", ".lora.up.", "lora_linear_layer")
    if any(m in k for k in keys for m in lora_marks):
        return Format.DIFFUSERS_LORA
    if _is_embedding(keys):
        return Format.TEXTUAL_INVERSION
    raise BenchError(
        f"unrecognised checkpoint format ({len(keys)} tensors, e.g. {sorted(keys)[:2]})", path
    )


# -- textual inversion -----------------------------------------------------------------------
SDXL_EMBEDDING_KEYS = ("clip_l", "clip_g")  # text encoder 1 (CLIP ViT-L), 2 (OpenCLIP bigG)
_EMBEDDING_KEYS = ("emb_params", "string_to_param", "string_to_param.*")


def _is_embedding(keys: list[str]) -> bool:
    return (
        len(keys) == 1
        or set(keys) == set(SDXL_EMBEDDING_KEYS)
        or any(k in keys for k in _EMBEDDING_KEYS)
    )


@dataclass
class Embedding:
    """A textual-inversion embedding: vectors per text encoder (``clip_l`` for the first or
    only one, ``clip_g`` for SDXL's second) and the token its file names, if any."""

    vectors: dict[str, torch.Tensor]
    named_token: str | None = None

    @property
    def is_sdxl(self) -> bool:
        return "clip_g" in self.vectors


def _as_rows(tensor: Any, path: Path, what: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor) or tensor.ndim not in (1, 2):
        raise BenchError(f"embedding {what} is not a vector or a (vectors, dim) matrix", path)
    return tensor.detach().reshape(-1, tensor.shape[-1]).float()


def read_embedding(path: Path, allow_pickle: bool = False) -> Embedding:
    """The vectors of a textual-inversion file in any of the layouts trainers write:
    diffusers ``{token: tensor}``, A1111 ``.pt`` (``string_to_param: {'*': tensor}``),
    kohya/A1111 ``.safetensors`` (``emb_params``) and SDXL (``clip_l`` + ``clip_g``)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        data = _load_pickle(path, allow_pickle)
    else:
        data = load_state_dict(path)
    if not isinstance(data, dict) or not data:
        raise BenchError("embedding file holds no dictionary of tensors", path)
    if "string_to_param" in data:  # A1111 (and the original textual_inversion repository)
        params = data["string_to_param"]
        if not isinstance(params, dict) or len(params) != 1:
            raise BenchError("A1111 embedding: string_to_param must hold exactly one term", path)
        return Embedding({"clip_l": _as_rows(next(iter(params.values())), path, "'*'")})
    if "string_to_param.*" in data:
        return Embedding({"clip_l": _as_rows(data["string_to_param.*"], path, "'*'")})
    if any(k in data for k in SDXL_EMBEDDING_KEYS):
        missing = [k for k in SDXL_EMBEDDING_KEYS if k not in data]
        if missing:
            raise BenchError(f"SDXL embedding without {missing[0]}", path)
        return Embedding({k: _as_rows(data[k], path, k) for k in SDXL_EMBEDDING_KEYS})
    if "emb_params" in data:  # kohya sd-scripts, A1111 safetensors
        return Embedding({"clip_l": _as_rows(data["emb_params"], path, "emb_params")})
    tensors = _tensors(data)
    if len(tensors) != 1:
        raise BenchError(
            f"not a textual-inversion embedding ({len(tensors)} tensors; expected one, "
            "emb_params, string_to_param or clip_l/clip_g)",
            path,
        )
    token, tensor = next(iter(tensors.items()))
    return Embedding({"clip_l": _as_rows(tensor, path, repr(token))}, named_token=token)


def textual_inversion_token(path: Path, embedding: Embedding, explicit: str | None) -> str:
    """The token an embedding binds: given, the tensor's name (diffusers), or the file stem
    (as A1111 and kohya do)."""
    return explicit or embedding.named_token or path.stem

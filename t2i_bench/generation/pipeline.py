"""Load the base text-to-image pipeline: tiny, a local folder, a single file or a hub id."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from t2i_bench.errors import BenchError
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


def load_base_pipeline(
    source: str, seed: int = 0, device: str = "cpu", dtype: str = "float32", scheduler: str = "ddim"
):
    """A diffusers pipeline with the safety checker off and progress bars silenced."""
    import diffusers

    quiet_loaders()
    count_load("pipeline")
    torch_dtype = DTYPES[dtype]
    if source == "tiny":
        from t2i_bench.generation.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=seed)
    else:
        path = Path(source)
        kwargs = {"torch_dtype": torch_dtype, "safety_checker": None}
        try:
            if path.is_file():
                pipe = diffusers.StableDiffusionPipeline.from_single_file(str(path), **kwargs)
            else:
                local = path.is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
                pipe = diffusers.DiffusionPipeline.from_pretrained(
                    str(path) if path.is_dir() else source, local_files_only=local, **kwargs
                )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BenchError(f"cannot load base model: {first}", source) from None
    scheduler_cls = getattr(diffusers, _SCHEDULERS[scheduler])
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if pipe.unet.dtype != torch_dtype:
        pipe = pipe.to(dtype=torch_dtype)
    return pipe.to(device)

"""Comparison (issue 13, item 7): SD 1.5-architecture generation on a GPU, t2i-bench's render
path vs a plain diffusers loop (target >= 1.0x images/s). Skipped without CUDA.

The pipeline of :mod:`benchmarks.sd15` (random weights, float16, 512x512, DDIM 25 steps,
guidance 7.5) renders the same images both ways, from the same saved folder: t2i-bench through
``LocalExecutor().render`` (render batches of up to ``sampler.batch_size`` images of mixed
prompts, one seeded generator per image; a background thread renders the next batch while the
driver encodes PNGs), the loop with one pipeline call per prompt (its seeds' images, one
generator per seed) and each PNG encoded after the call, as a script saving its images does.
Both are warmed up first (pipeline loaded, kernels chosen); rounds interleaved; pixels compared.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import Context, Row, interleaved
from benchmarks.generation import diffusers_loop
from benchmarks.sd15 import gpu_setup

NAME = "gpu_generation"
PROMPTS = (
    "a photo of a red vintage car parked on a cobblestone street",
    "an oil painting of a lighthouse on a rocky coast at dusk",
    "a close-up photo of a tabby cat sleeping on a windowsill",
    "a watercolor illustration of a mountain village in winter",
    "a bowl of ramen with an egg, studio lighting",
    "a futuristic city skyline at night, neon lights",
    "a wooden cabin in a pine forest, morning fog",
    "a portrait of an astronaut in a sunflower field",
)


def jobs(ctx: Context) -> list[tuple[str, str, int]]:
    """(key, prompt, seed) for every image: each prompt with several seeds."""
    prompts = PROMPTS[: ctx.size(8, 2)]
    seeds = range(ctx.size(4, 2))
    return [(f"{i}-{s}", p, s) for i, p in enumerate(prompts) for s in seeds]


def render_tasks(work: list[tuple[str, str, int]], batch_size: int):
    from t2i_bench.generation.worker import RenderTask

    for start in range(0, len(work), batch_size):
        chunk = work[start : start + batch_size]
        keys, prompts, seeds = (tuple(column) for column in zip(*chunk, strict=True))
        yield RenderTask("base", None, 1.0, None, keys, prompts, seeds)


def ours(executor, spec, sampler, work) -> dict[str, bytes]:
    out = {}
    for result in executor.render(spec, sampler, list(render_tasks(work, sampler.batch_size))):
        for key, image in zip(result.task.keys, result.images, strict=True):
            if isinstance(image, str):
                raise RuntimeError(f"{key}: {image}")
            out[key] = image
    return out


def plain_loop(pipe, sampler, work) -> dict[str, bytes]:
    """One call per prompt with a CPU generator per seed; each PNG encoded after the call."""
    from t2i_bench.store import png_bytes

    return diffusers_loop(pipe, work, sampler, png_bytes)


def _pixels(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def run(ctx: Context) -> Row:
    from t2i_bench.executors import LocalExecutor
    from t2i_bench.generation.pipeline import load_base_pipeline
    from t2i_bench.generation.worker import PipelineSpec

    setup = gpu_setup(ctx)
    folder, sampler = setup["folder"], setup["sampler"]
    spec = PipelineSpec(source=str(folder), device="cuda", dtype="float16", threads=1)
    work = jobs(ctx)
    executor = LocalExecutor()
    pipe = load_base_pipeline(str(folder), device="cuda", dtype="float16")
    ours(executor, spec, sampler, work[:2])  # warm-up: pipeline loaded, kernels chosen
    plain_loop(pipe, sampler, work[:2])
    rounds = ctx.rounds(3)
    timed = interleaved(
        {
            "ours": lambda: ours(executor, spec, sampler, work),
            "loop": lambda: plain_loop(pipe, sampler, work),
        },
        rounds,
    )
    (ours_clock, mine), (loop_clock, theirs) = timed["ours"], timed["loop"]
    executor.close()
    worst = max(int(np.abs(_pixels(mine[k]) - _pixels(theirs[k])).max()) for k in theirs)
    n = len(work)
    name = torch.cuda.get_device_name(0)
    notes = (
        f"{n} images ({len(work) // ctx.size(4, 2)} prompts x {ctx.size(4, 2)} seeds), SD 1.5 "
        f"architecture with random weights, float16, {sampler.width}x{sampler.height}, DDIM "
        f"{sampler.steps} steps, guidance {sampler.guidance_scale}, render batches of "
        f"{sampler.batch_size}, on {name}; best of {rounds}: t2i-bench {ours_clock.wall:.2f} s, "
        f"loop {loop_clock.wall:.2f} s; PNGs included; max abs pixel difference {worst}/255 "
        "(batched vs per-prompt float16 kernels)"
    )
    return Row(
        NAME,
        "SD 1.5-size render path vs a plain diffusers loop (GPU, fp16, 512 px)",
        n / ours_clock.wall,
        n / loop_clock.wall,
        "img/s",
        loop_clock.wall / ours_clock.wall,
        "throughput ours / loop",
        ">=",
        1.0,
        notes,
    )

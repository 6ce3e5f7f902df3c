"""Comparison 4: batched generation vs a plain diffusers loop (target >= 1.0x throughput).

Both render the base row of the scoring workload's plan (every prompt type, several seeds a
prompt) on the same tiny pipeline with the same sampler: t2i-bench with ``render_batch`` over
the plan's render batches (up to 32 images of mixed prompts, one seeded generator per image),
the loop with one pipeline call per prompt (its images, one generator per seed). Pixels are
compared image by image.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import Context, Row, interleaved
from benchmarks.workload import write_adapters, write_concept, write_config

NAME = "generation"


def plain_loop(pipe, jobs, sampler) -> dict[str, np.ndarray]:
    """One diffusers call per prompt: ``num_images_per_prompt`` images, a generator per seed."""
    return diffusers_loop(pipe, [(j.key, j.prompt, j.seed) for j in jobs], sampler, np.asarray)


def diffusers_loop(pipe, work, sampler, convert) -> dict:
    """The plain diffusers baseline: for each prompt of ``work`` ((key, prompt, seed) triples)
    one pipeline call with a CPU generator per seed; each image passed to ``convert`` right
    after its call."""
    by_prompt: dict[str, list] = {}
    for key, prompt, seed in work:
        by_prompt.setdefault(prompt, []).append((key, seed))
    out = {}
    with torch.inference_mode():
        for prompt, group in by_prompt.items():
            images = pipe(
                prompt,
                num_images_per_prompt=len(group),
                num_inference_steps=sampler.steps,
                guidance_scale=sampler.guidance_scale,
                height=sampler.height,
                width=sampler.width,
                generator=[torch.Generator().manual_seed(seed) for _, seed in group],
            ).images
            out.update({key: convert(im) for (key, _), im in zip(group, images, strict=True)})
    return out


def batched(pipe, batches, sampler) -> dict[str, np.ndarray]:
    """t2i-bench's ``render_batch`` over the plan's render batches."""
    from t2i_bench.generation.render import render_batch

    out = {}
    for batch in batches:
        prompts, seeds = [j.prompt for j in batch.jobs], [j.seed for j in batch.jobs]
        images = render_batch(pipe, prompts, seeds, sampler)
        out.update({j.key: np.asarray(im) for j, im in zip(batch.jobs, images, strict=True)})
    return out


def run(ctx: Context) -> Row:
    from t2i_bench import runner
    from t2i_bench.generation.pipeline import load_base_pipeline

    root = ctx.workdir / "generation"
    root.mkdir(parents=True, exist_ok=True)
    concept = write_concept(root, references=6)
    config = write_config(
        root,
        "generation",
        write_adapters(root / "adapters", 1),
        concept,
        images_per_prompt=4,
        max_per_type=ctx.size(2, 1),
        threads=ctx.threads,
    )
    run_ = runner.prepare(config)
    try:
        base = run_.base.name
        batches = [b for b in run_.plan.batches if b.checkpoint == base]
        sampler = run_.config.sampler
    finally:
        run_.close()
    jobs = [j for b in batches for j in b.jobs]
    pipe = load_base_pipeline("tiny", 0)
    batched(pipe, batches[:1], sampler)  # warm-up: first-call initialisation
    repeats = ctx.rounds(3)
    timed = interleaved(
        {
            "plain": lambda: plain_loop(pipe, jobs, sampler),
            "ours": lambda: batched(pipe, batches, sampler),
        },
        repeats=repeats,
    )
    (c_plain, plain), (c_ours, ours) = timed["plain"], timed["ours"]
    t_plain, t_ours = c_plain.wall, c_ours.wall
    diffs = [np.abs(ours[k].astype(int) - plain[k].astype(int)) for k in plain]
    max_diff = max(int(d.max()) for d in diffs)
    differing = sum(int((d > 0).sum()) for d in diffs)
    pixels = sum(d.size for d in diffs)
    equal = (
        "identical pixels"
        if max_diff == 0
        else (
            f"max abs pixel difference {max_diff}/255 on {differing} of {pixels} values "
            "(float rounding of batched convolutions)"
        )
    )
    n = len(jobs)
    prompts = len({j.prompt for j in jobs})
    notes = (
        f"{n} images ({prompts} prompts x {n // prompts}), tiny model 64 px, DDIM 10 steps, "
        f"CFG 4.0, plan batches {[len(b.jobs) for b in batches]}; best of "
        f"{repeats}; CPU-time ratio {c_plain.cpu / c_ours.cpu:.2f}; {equal}"
    )
    return Row(
        NAME,
        "batched generation vs a plain diffusers loop",
        n / t_ours,
        n / t_plain,
        "img/s",
        t_plain / t_ours,
        "throughput ours / loop",
        ">=",
        1.0,
        notes,
    )

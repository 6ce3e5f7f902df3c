"""Comparison (issue 13, item 7): adapter switching vs reloading on an SD 1.5-architecture
pipeline on a GPU (target >= 3x faster). Skipped without CUDA.

N kohya LoRA files (lycoris-lora's kohya network, LoRA/LoHa/LoKr in turn, random non-zero
weights) written against the pipeline of :mod:`benchmarks.sd15`; then, as
:mod:`benchmarks.switching` does at 64 px on the CPU: ``AdapterSwitcher.apply``/``remove`` on
one pipeline loaded once vs ``load_base_pipeline`` of the saved float16 folder + ``apply`` per
checkpoint, each rendering a few 512x512 images; the ratio compares the time spent getting
each checkpoint onto a pipeline, the end-to-end times are in the notes, and the images of the
two ways are compared.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import Context, Row, best
from benchmarks.sd15 import gpu_setup
from benchmarks.switching import interleaved_rounds
from benchmarks.workload import write_adapters

NAME = "gpu_switching"


def run(ctx: Context) -> Row:
    from t2i_bench.config import SamplerConfig
    from t2i_bench.generation.pipeline import load_base_pipeline

    setup = gpu_setup(ctx)
    folder = setup["folder"]
    load = {"device": setup["device"], "dtype": setup["dtype"]}
    writer = load_base_pipeline(str(folder))  # float32 on the CPU, only to write the files
    adapters = write_adapters(ctx.workdir / "sd15-adapters", ctx.size(4, 2), pipe=writer)
    del writer
    steps = setup["sampler"].steps
    sampler = SamplerConfig(steps=steps, guidance_scale=7.5, width=512, height=512)
    seeds = list(range(ctx.size(2, 1)))
    load_base_pipeline(str(folder), **load)  # warm-up: first-load initialisation
    rounds = ctx.rounds(2)
    images, spent, total = interleaved_rounds(
        rounds, folder, adapters, seeds, sampler, torch.cuda.synchronize, **load
    )
    worst = max(
        int(np.abs(u.astype(np.int16) - v.astype(np.int16)).max())
        for x, y in zip(images["switch"], images["reload"], strict=True)
        for u, v in zip(x, y, strict=True)
    )
    s_spent, r_spent = best(spent["switch"]).wall, best(spent["reload"]).wall
    s_total, r_total = best(total["switch"]).wall, best(total["reload"]).wall
    n = len(adapters)
    notes = (
        f"{n} adapters (LoRA/LoHa/LoKr, dim 4, attn-mlp) x {len(seeds)} images, SD 1.5 "
        f"architecture float16 512x512, DDIM {steps} steps, on {torch.cuda.get_device_name(0)}; "
        f"best of {rounds}; per checkpoint {s_spent / n * 1000:.0f} ms (switch, incl. the one "
        f"base load) vs {r_spent / n * 1000:.0f} ms (load + apply); end to end with rendering "
        f"{s_total:.2f} s vs {r_total:.2f} s = {r_total / s_total:.2f}x; max abs pixel "
        f"difference switch vs reload {worst}/255"
    )
    return Row(
        NAME,
        "adapter switching vs reloading (SD 1.5 size, GPU, fp16)",
        s_spent,
        r_spent,
        "s",
        r_spent / s_spent,
        "speed-up: reload / switch",
        ">=",
        3.0,
        notes,
    )

"""Comparison 7 (issue 3): switching adapters in one pipeline vs reloading the pipeline per
checkpoint (target >= 3x faster, identical images).

N LyCORIS checkpoints (LoRA, LoHa, LoKr) x a few images each on the tiny profile. Switching:
``load_base_pipeline`` of a saved tiny base folder once, then per checkpoint
``AdapterSwitcher.apply`` (which removes the previous one) + ``render_batch``, ``remove`` at
the end. Reloading: per checkpoint ``load_base_pipeline`` of the same folder + ``apply`` +
``render_batch``. The ratio compares the time spent getting each checkpoint onto a pipeline
(switch: apply/remove; reload: load + apply); the end-to-end times with rendering are in the
notes. Best of N rounds, interleaved; images asserted bitwise equal.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import Clock, Context, Row, best, clock
from benchmarks.workload import write_adapters

NAME = "switching"
PROMPT = "a photo of zqx toy on a wooden table"


def _render(pipe, seeds, sampler) -> list[np.ndarray]:
    from t2i_bench.generation.render import render_batch

    return [np.asarray(im) for im in render_batch(pipe, [PROMPT] * len(seeds), seeds, sampler)]


def switching(folder, adapters, seeds, sampler, **load) -> tuple[list, Clock]:
    """Images per adapter and the time spent loading/switching (rendering excluded);
    ``load``: ``load_base_pipeline``'s device and dtype."""
    from t2i_bench.generation.adapters import AdapterSwitcher
    from t2i_bench.generation.pipeline import load_base_pipeline

    with clock() as spent:
        pipe = load_base_pipeline(str(folder), **load)
        switcher = AdapterSwitcher(pipe, str(folder))
    out = []
    for path in adapters:
        with clock() as step:
            switcher.apply(path)
        spent += step
        out.append(_render(pipe, seeds, sampler))
    with clock() as step:
        switcher.remove()
    return out, spent + step


def reloading(folder, adapters, seeds, sampler, **load) -> tuple[list, Clock]:
    from t2i_bench.generation.adapters import AdapterSwitcher
    from t2i_bench.generation.pipeline import load_base_pipeline

    out, spent, pipe = [], Clock(), None
    for path in adapters:
        with clock() as step:
            pipe = None  # the previous pipeline is freed before the next one loads
            pipe = load_base_pipeline(str(folder), **load)
            AdapterSwitcher(pipe, str(folder)).apply(path)
        spent += step
        out.append(_render(pipe, seeds, sampler))
    return out, spent


def interleaved_rounds(
    rounds: int, folder, adapters, seeds, sampler, finish=lambda: None, **load
) -> tuple[dict[str, list], dict[str, list[Clock]], dict[str, list[Clock]]]:
    """``rounds`` of switching then reloading: the last round's images of each way, and each
    round's time spent on the adapters and end to end; ``finish`` runs before a round's clock
    stops (e.g. waiting for the GPU)."""
    spent: dict[str, list[Clock]] = {"switch": [], "reload": []}
    total: dict[str, list[Clock]] = {"switch": [], "reload": []}
    images: dict[str, list] = {}
    for _ in range(rounds):
        for name, fn in (("switch", switching), ("reload", reloading)):
            with clock() as whole:
                images[name], part = fn(folder, adapters, seeds, sampler, **load)
                finish()
            spent[name].append(part)
            total[name].append(whole)
    return images, spent, total


def run(ctx: Context) -> Row:
    from t2i_bench.config import SamplerConfig
    from t2i_bench.generation.pipeline import load_base_pipeline
    from t2i_bench.generation.tiny import build_tiny_pipeline

    root = ctx.workdir / "switching"
    folder = root / "base"
    base = build_tiny_pipeline(0)
    base.save_pretrained(str(folder))
    adapters = write_adapters(root / "adapters", ctx.size(6, 3), pipe=base)
    sampler = SamplerConfig(steps=10, guidance_scale=4.0, width=64, height=64)
    seeds = list(range(ctx.size(2, 1)))
    load_base_pipeline(str(folder))  # warm-up: first-load initialisation
    repeats = ctx.rounds(3)
    images, spent, total = interleaved_rounds(repeats, folder, adapters, seeds, sampler)
    for path, x, y in zip(adapters, images["switch"], images["reload"], strict=True):
        if not all(np.array_equal(u, v) for u, v in zip(x, y, strict=True)):
            raise AssertionError(f"switching and reloading give different images for {path.name}")
    s_clock, r_clock = best(spent["switch"]), best(spent["reload"])
    s_spent, r_spent = s_clock.wall, r_clock.wall
    s_total, r_total = best(total["switch"]).wall, best(total["reload"]).wall
    n = len(adapters)
    notes = (
        f"{n} adapters (LoRA/LoHa/LoKr) x {len(seeds)} images, tiny 64 px, DDIM 10 steps; best "
        f"of {repeats}; images bitwise identical; per checkpoint {s_spent / n * 1000:.0f} "
        f"ms (switch, incl. the one base load) vs {r_spent / n * 1000:.0f} ms (load + apply); "
        f"end to end with rendering {s_total:.2f} s vs {r_total:.2f} s = "
        f"{r_total / s_total:.2f}x; CPU-time ratio {r_clock.cpu / s_clock.cpu:.2f}"
    )
    return Row(
        NAME,
        "adapter switching vs reloading the pipeline",
        s_spent,
        r_spent,
        "s",
        r_spent / s_spent,
        "speed-up: reload / switch",
        ">=",
        3.0,
        notes,
    )

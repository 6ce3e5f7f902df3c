"""Comparison 2: t2i-bench's metric suite vs the floor (target <= 1.2x the time).

The floor is the sum, over the backbones the suite needs, of the forward passes alone over
every image t2i-bench embeds (generated images and references), in batches of the same size,
on tensors preprocessed beforehand, plus the CLIP text forward over the distinct CLIP-T
prompts. Everything else t2i-bench does (decoding, preprocessing, the store, metric math,
loading the models) is the overhead this ratio shows.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import Context, Row
from benchmarks.per_metric_scripts import read
from benchmarks.suite import measure_suite, rounds, scoring_workload, workload_summary

NAME = "floor"


def _inputs(backbone, images) -> list[torch.Tensor]:
    """Model inputs in ``batch_size`` chunks, exactly as the backbone prepares them."""
    size = backbone.batch_size
    chunks = [images[i : i + size] for i in range(0, len(images), size)]
    if backbone.name == "inception_v3_fid":
        import numpy as np

        arrays = [np.stack([np.asarray(im) for im in c]) for c in chunks]
        return [torch.from_numpy(a).permute(0, 3, 1, 2).contiguous() for a in arrays]
    return [backbone._prepare_images(c) for c in chunks]


def _forward(backbone, pixels: torch.Tensor) -> torch.Tensor:
    if backbone.name == "inception_v3_fid":
        return backbone.net(pixels)[0]
    return backbone._forward_images(pixels)


def _clip_t_texts(work) -> list[str]:
    from t2i_bench.metrics.base import get_metric

    types = get_metric("clip_t").prompt_types
    texts = {
        work.data.concept.text_for_clip_t(p)
        for g in work.data.groups
        if g.prompt_type in types
        for p in g.prompts
    }
    return sorted(texts)


def measure_floor(work, ours) -> dict[str, float]:
    """Seconds of the forward passes alone, per backbone (and the CLIP text tower)."""
    paths = [p for g in work.data.groups for p in g.paths] + list(work.data.references)
    images = read(paths)
    per_role: dict[str, float] = {}
    with torch.inference_mode():
        for role, backbone in ours.backbones.items():
            batches = _inputs(backbone, images)
            start = time.perf_counter()
            for pixels in batches:
                _forward(backbone, pixels)
            per_role[role] = time.perf_counter() - start
        clip = ours.backbones["clip"]
        tokens = clip.tokenizer(_clip_t_texts(work))
        start = time.perf_counter()
        for i in range(0, len(tokens), clip.batch_size):
            clip.model.encode_text(tokens[i : i + clip.batch_size])
        per_role["clip text"] = time.perf_counter() - start
    return per_role


def run(ctx: Context) -> Row:
    work = scoring_workload(ctx)
    ours_times, floors = [], []
    for i in range(rounds(ctx)):  # ours, floor, ours, floor (ours shared with per_metric)
        ours = measure_suite(ctx, i)
        ours_times.append(ours.seconds)
        per_role = measure_floor(work, ours)
        floors.append(sum(per_role.values()))
    mine, floor = min(ours_times), min(floors)
    notes = (
        f"{workload_summary(work)}, each through {len(ours.backbones)} backbones; floor "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(per_role.items(), key=lambda kv: -kv[1]))
        + f"; best of {len(floors)} (ours "
        + ", ".join(f"{t:.1f}" for t in ours_times)
        + " s; floor "
        + ", ".join(f"{t:.1f}" for t in floors)
        + " s)"
    )
    return Row(
        NAME,
        "scoring vs the forward passes alone",
        mine,
        floor,
        "s",
        mine / floor,
        "time ours / floor",
        "<=",
        1.2,
        notes,
    )

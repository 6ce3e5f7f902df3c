"""Comparison 2: t2i-bench's metric suite vs the floor (target <= 1.1x the time).

The floor is the sum, over the backbones the suite needs, of the forward passes alone over
every image t2i-bench embeds (generated images and references), in batches of the same size,
on tensors preprocessed beforehand, plus the CLIP text forward over the distinct CLIP-T
prompts. Everything else t2i-bench does (decoding, preprocessing, the store, metric math,
loading the models) is the overhead this ratio shows. Each round times ours right before the
floor (see :mod:`benchmarks.suite`).
"""

from __future__ import annotations

from benchmarks.common import Context, Row
from benchmarks.suite import round_times, scoring_rounds, scoring_workload, workload_summary

NAME = "floor"


def run(ctx: Context) -> Row:
    work = scoring_workload(ctx)
    rounds = scoring_rounds(ctx)
    ours = [r.ours.wall for r in rounds]
    floors = [r.floor_clock.wall for r in rounds]
    cpu = min(r.ours.cpu for r in rounds) / min(r.floor_clock.cpu for r in rounds)
    best = rounds[floors.index(min(floors))]
    by_cost = sorted(best.floor.items(), key=lambda kv: -kv[1])
    notes = (
        f"{workload_summary(work)}, each through {len(best.floor) - 1} backbones; floor "
        + ", ".join(f"{k} {v:.1f} s" for k, v in by_cost)
        + f"; best of {len(rounds)} (ours {round_times(ours)} s; floor {round_times(floors)} s); "
        f"CPU-time ratio {cpu:.3f}"
    )
    return Row(
        NAME,
        "scoring vs the forward passes alone",
        min(ours),
        min(floors),
        "s",
        min(ours) / min(floors),
        "time ours / floor",
        "<=",
        1.1,
        notes,
    )

"""Comparison 1: t2i-bench's metric suite vs one script per metric (target <= 0.5x the time).

Both sides score the same generated images with the same architectures (see
:mod:`benchmarks.zoo`); the per-metric side runs every script of
:mod:`benchmarks.per_metric_scripts` in turn, each loading its own model and reading its
own images. Their values are checked against t2i-bench's (largest relative difference).
"""

from __future__ import annotations

import time

from benchmarks.common import Context, Row
from benchmarks.per_metric_scripts import SCRIPTS, Values
from benchmarks.suite import agreement, measure_suite, rounds, scoring_workload, workload_summary

NAME = "per_metric"


def run(ctx: Context) -> Row:
    work = scoring_workload(ctx)
    ours_times, baselines = [], []
    for i in range(rounds(ctx)):  # ours, theirs, ours, theirs: best of each
        ours = measure_suite(ctx, i)
        ours_times.append(ours.seconds)
        values: Values = {}
        per_script: dict[str, float] = {}
        for name, script in SCRIPTS.items():
            start = time.perf_counter()
            values.update(script(work.data, work.zoo))
            per_script[name] = time.perf_counter() - start
        baselines.append(sum(per_script.values()))
    mine, baseline = min(ours_times), min(baselines)
    worst, where = agreement(ours.values, values)
    slowest = sorted(per_script.items(), key=lambda kv: -kv[1])[:4]
    notes = (
        f"{workload_summary(work)}; 13 metrics; per-metric scripts "
        + ", ".join(f"{k} {v:.1f} s" for k, v in slowest)
        + f" (+{len(per_script) - len(slowest)} more); values agree within "
        f"{worst:.1e} relative (worst: {where}); best of {len(baselines)} (ours "
        + ", ".join(f"{t:.1f}" for t in ours_times)
        + " s; theirs "
        + ", ".join(f"{t:.1f}" for t in baselines)
        + " s)"
    )
    return Row(
        NAME,
        "scoring vs one script per metric",
        mine,
        baseline,
        "s",
        mine / baseline,
        "time ours / theirs",
        "<=",
        0.5,
        notes,
    )

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
from benchmarks.suite import agreement, measure_suite, scoring_workload, workload_summary

NAME = "per_metric"


def run(ctx: Context) -> Row:
    work = scoring_workload(ctx)
    ours = measure_suite(ctx)
    values: Values = {}
    per_script: dict[str, float] = {}
    for name, script in SCRIPTS.items():
        start = time.perf_counter()
        values.update(script(work.data, work.zoo))
        per_script[name] = time.perf_counter() - start
    baseline = sum(per_script.values())
    worst, where = agreement(ours.values, values)
    slowest = sorted(per_script.items(), key=lambda kv: -kv[1])[:4]
    notes = (
        f"{workload_summary(work)}; 13 metrics; per-metric scripts "
        + ", ".join(f"{k} {v:.1f} s" for k, v in slowest)
        + f" (+{len(per_script) - len(slowest)} more); values agree within "
        f"{worst:.1e} relative (worst: {where})"
    )
    return Row(
        NAME,
        "scoring vs one script per metric",
        ours.seconds,
        baseline,
        "s",
        ours.seconds / baseline,
        "time ours / theirs",
        "<=",
        0.5,
        notes,
    )

"""Comparison 1: t2i-bench's metric suite vs one script per metric (target <= 0.5x the time).

Both sides score the same generated images with the same architectures (see
:mod:`benchmarks.zoo`); the per-metric side runs every script of
:mod:`benchmarks.per_metric_scripts` in turn, each loading its own model and reading its
own images. Their values are checked against t2i-bench's (largest relative difference).
"""

from __future__ import annotations

from benchmarks.common import Context, Row
from benchmarks.suite import (
    agreement,
    round_times,
    scoring_rounds,
    scoring_workload,
    workload_summary,
)

NAME = "per_metric"


def run(ctx: Context) -> Row:
    work = scoring_workload(ctx)
    rounds = scoring_rounds(ctx)
    ours = [r.ours.wall for r in rounds]
    theirs = [r.scripts_clock.wall for r in rounds]
    cpu = min(r.ours.cpu for r in rounds) / min(r.scripts_clock.cpu for r in rounds)
    best = rounds[theirs.index(min(theirs))]
    worst, where = agreement(rounds[-1].values, rounds[-1].script_values)
    slowest = sorted(best.scripts.items(), key=lambda kv: -kv[1])[:4]
    notes = (
        f"{workload_summary(work)}; 13 metrics; per-metric scripts "
        + ", ".join(f"{k} {v:.1f} s" for k, v in slowest)
        + f" (+{len(best.scripts) - len(slowest)} more); values agree within {worst:.1e} "
        f"relative (worst: {where}); best of {len(rounds)} (ours {round_times(ours)} s; "
        f"theirs {round_times(theirs)} s); CPU-time ratio {cpu:.3f}"
    )
    return Row(
        NAME,
        "scoring vs one script per metric",
        min(ours),
        min(theirs),
        "s",
        min(ours) / min(theirs),
        "time ours / theirs",
        "<=",
        0.5,
        notes,
    )

"""Training curves: each run's metric values against epoch (or step), best checkpoint marked.

A run is one training run (configuration × seed): the checkpoints sharing a ``run_id``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from t2i_bench.analysis.figures import figure, save, with_suffix
from t2i_bench.analysis.io import write_table

#: Columns that measure training progress, in order of preference.
PROGRESS_COLUMNS = ("epoch", "step")
CURVE_COLUMNS = ("group", "target", "run_id", "config_id", "checkpoint", "value", "best")


def progress_column(table: pd.DataFrame) -> str | None:
    """``epoch`` or ``step``: the first with at least two values, else None."""
    for column in PROGRESS_COLUMNS:
        if column in table.columns and table[column].nunique(dropna=True) >= 2:
            return column
    return None


def metric_of(target: str) -> str:
    """The metric of a ``{metric}.{prompt_type}`` column."""
    return target.rsplit(".", 1)[0]


def training_curves(
    table: pd.DataFrame,
    targets: Sequence[str],
    higher_is_better: Mapping[str, bool],
    *,
    group: str = "all",
    progress: str | None = None,
) -> pd.DataFrame:
    """Long table of curves: one row per run × progress value × target with a value, for
    the runs with values at two progress values at least (one point is no curve).

    Columns: ``group, target, run_id, config_id, checkpoint, <progress>, value, best``, rows
    by target, run and progress. ``best`` marks each run's best checkpoint for that target
    (the highest value, or the lowest for a lower-is-better metric; ties: the earliest).
    ``attrs["progress"]`` is the progress column. Empty when there is no progress column.
    """
    progress = progress or progress_column(table)
    columns = [*CURVE_COLUMNS[:5], progress or "epoch", *CURVE_COLUMNS[5:]]
    if progress is None or "run_id" not in table.columns:
        empty = pd.DataFrame(columns=columns)
        empty.attrs["progress"] = progress
        return empty
    parts = []
    for target in targets:
        if target not in table.columns:
            continue
        part = table[["run_id", "config_id", "checkpoint", progress, target]].rename(
            columns={target: "value"}
        )
        part = part[part["value"].notna() & part[progress].notna()]
        points = part.groupby("run_id")[progress].transform("nunique")
        part = part[points >= 2]  # a run with one checkpoint has no curve
        part = part.sort_values(["run_id", progress, "checkpoint"], kind="mergesort")
        sign = 1.0 if higher_is_better.get(metric_of(target), True) else -1.0
        oriented = part["value"] * sign
        best_value = oriented.groupby(part["run_id"]).transform("max")
        candidate = oriented.eq(best_value)
        first = candidate & ~candidate.groupby(part["run_id"]).cumsum().gt(1)
        part = part.assign(group=group, target=target, best=first.to_numpy())
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    frame = frame[columns].reset_index(drop=True)
    frame.attrs["progress"] = progress
    return frame


def best_checkpoints(curves: pd.DataFrame) -> pd.DataFrame:
    """Each run's best checkpoint per group and target (the rows marked ``best``)."""
    return curves[curves["best"].astype(bool)].reset_index(drop=True)


def curves_plot(curves: pd.DataFrame, target: str, higher: bool, stem: Path) -> tuple[str, str]:
    """One panel per group: a line per run (coloured by configuration), best points ringed.

    Writes ``stem.png`` and ``stem.csv`` (the rows of ``curves`` for ``target``).
    """
    progress = curves.attrs.get("progress") or "epoch"
    data = curves[curves["target"].eq(target)]
    groups = list(dict.fromkeys(data["group"]))
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    configs = sorted(data["config_id"].astype(str).unique())
    palette = matplotlib.colormaps["tab20"]
    colour = {c: palette(i % 20) for i, c in enumerate(configs)}
    arrow = "↑ higher is better" if higher else "↓ lower is better"
    with figure((4.4 * ncols, 3.2 * nrows + 0.4)) as fig:
        for k, group in enumerate(groups):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            rows = data[data["group"].eq(group)]
            for _, line in rows.groupby("run_id", sort=True):
                c = colour[str(line["config_id"].iloc[0])]
                x = line[progress].to_numpy(dtype=np.float64)
                ax.plot(x, line["value"], color=c, lw=0.9, alpha=0.8, marker="o", ms=2)
                best = line[line["best"].astype(bool)]
                ax.scatter(
                    best[progress].to_numpy(dtype=np.float64),
                    best["value"],
                    s=28,
                    facecolors="none",
                    edgecolors=c,
                    lw=1.2,
                    zorder=4,
                )
            ax.set_title(f"{group} ({rows['run_id'].nunique()} runs)", fontsize=9)
            ax.set_xlabel(progress, fontsize=9)
            ax.tick_params(labelsize=8)
            if k % ncols == 0:
                ax.set_ylabel(target, fontsize=9)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
        fig.suptitle(
            f"Training curves of {target} ({arrow}); a line per run, "
            "colour per configuration, ring = best",
            fontsize=10,
        )
        fig.tight_layout()
        save(fig, stem)
    write_table(data.reset_index(drop=True), with_suffix(stem, ".csv"))
    return (f"{stem.name}.png", f"{stem.name}.csv")

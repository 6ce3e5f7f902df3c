"""Report plots (matplotlib, Agg, no pyplot state), each PNG with its numbers as CSV beside it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from t2i_bench.analysis import pareto_front
from t2i_bench.analysis.io import BASE_CHECKPOINT
from t2i_bench.report.leaderboard import (
    CI_SUFFIXES,
    Tradeoff,
    axis_values,
    prompt_types_of,
    write_csv,
)

DPI = 200
#: Okabe–Ito colours: distinguishable with colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHER_COLOUR = "#999999"
RC = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def tradeoff_points(
    board: pd.DataFrame, tradeoff: Tradeoff, higher_is_better: Mapping[str, bool]
) -> pd.DataFrame:
    """checkpoint, algo, x, y, is_base, pareto: one row per checkpoint with both values."""
    points = pd.DataFrame(
        {
            "checkpoint": board["checkpoint"].astype(str),
            "algo": _algo_labels(board),
            "x": axis_values(board, tradeoff.x),
            "y": axis_values(board, tradeoff.y),
        }
    )
    points["is_base"] = points["checkpoint"].eq(BASE_CHECKPOINT)
    oriented = points.assign(
        x=points["x"] * (1 if higher_is_better.get(tradeoff.x.metric, True) else -1),
        y=points["y"] * (1 if higher_is_better.get(tradeoff.y.metric, True) else -1),
    )
    points["pareto"] = pareto_front(oriented, "x", "y")
    return points.dropna(subset=["x", "y"]).reset_index(drop=True)


def tradeoff_plot(points: pd.DataFrame, x_label: str, y_label: str, stem: Path) -> Path:
    """Scatter of checkpoints coloured by algorithm, base model starred, Pareto front marked."""
    write_csv(points, stem.with_suffix(".csv"))
    with rc_context(RC):
        fig, ax = _figure(6.0, 4.4)
        adapters = points[~points["is_base"]]
        groups = adapters.groupby("algo", sort=True)
        for (algo, group), colour in zip(groups, _colours(), strict=False):
            ax.scatter(
                group["x"], group["y"], s=28, color=colour, label=_plain(algo), zorder=3, lw=0
            )
        base = points[points["is_base"]]
        if len(base):
            ax.scatter(
                base["x"], base["y"], s=140, marker="*", color="black", label="base model", zorder=4
            )
        _draw_front(ax, points[points["pareto"]])
        ax.set_xlabel(_plain(x_label))
        ax.set_ylabel(_plain(y_label))
        ax.grid(True, lw=0.3, alpha=0.5)
        ax.legend(loc="best", frameon=False)
        return _save(fig, stem)


def ci_frame(board: pd.DataFrame, metric: str) -> pd.DataFrame:
    """checkpoint, prompt_type, mean, ci_low, ci_high for one metric, leaderboard order."""
    parts = []
    for prompt_type in prompt_types_of(board, metric):
        column = f"{metric}.{prompt_type}"
        parts.append(
            pd.DataFrame(
                {
                    "checkpoint": board["checkpoint"].astype(str),
                    "prompt_type": prompt_type,
                    "mean": board[column].astype("float64"),
                    "ci_low": board[column + CI_SUFFIXES[0]].astype("float64"),
                    "ci_high": board[column + CI_SUFFIXES[1]].astype("float64"),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def metric_ci_plot(frame: pd.DataFrame, metric: str, higher: bool, stem: Path) -> Path:
    """Per checkpoint, a point per prompt type with its 95% bootstrap CI as a whisker.

    Points, not bars: the axis then spans the data, so differences in the third decimal of a
    cosine stay visible without a bar that pretends to start at zero.
    """
    write_csv(frame, stem.with_suffix(".csv"))
    checkpoints = list(dict.fromkeys(frame["checkpoint"]))
    prompt_types = list(dict.fromkeys(frame["prompt_type"]))
    slot = 0.7 / len(prompt_types)
    rows = np.arange(len(checkpoints))
    with rc_context(RC):
        fig, ax = _figure(6.0, 1.0 + len(checkpoints) * (0.12 + 0.06 * len(prompt_types)))
        for i, (prompt_type, colour) in enumerate(zip(prompt_types, _colours(), strict=False)):
            part = frame[frame["prompt_type"].eq(prompt_type)].set_index("checkpoint")
            offset = rows - 0.35 + slot * (i + 0.5)
            _points_with_ci(ax, part.reindex(checkpoints), offset, colour, _plain(prompt_type))
        ax.set_yticks(rows, [_plain(c) for c in checkpoints])
        ax.set_ylim(len(checkpoints) - 0.5, -0.5)
        better = "higher" if higher else "lower"
        ax.set_xlabel(_plain(f"{metric} ({better} is better); whiskers: 95% bootstrap CI"))
        ax.grid(True, axis="x", lw=0.3, alpha=0.5)
        for row in rows[1::2]:
            ax.axhspan(row - 0.5, row + 0.5, color="#f2f2f2", zorder=0, lw=0)
        ax.legend(title="prompt type", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _save(fig, stem)


def _points_with_ci(ax, part: pd.DataFrame, offset, colour: str, label: str) -> None:
    """One prompt type's means and CI whiskers (a missing bound draws no whisker)."""
    means = part["mean"].to_numpy(dtype=np.float64)
    err = np.vstack([means - part["ci_low"].to_numpy(), part["ci_high"].to_numpy() - means])
    err = np.nan_to_num(err, nan=0.0).clip(min=0.0)
    ax.errorbar(
        means,
        offset,
        xerr=err,
        fmt="o",
        ms=3.5,
        color=colour,
        ecolor=colour,
        elinewidth=0.9,
        capsize=2,
        label=label,
        zorder=3,
    )


def _figure(width: float, height: float):
    """A Figure with an Agg canvas and one axes (call inside ``rc_context(RC)``)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, stem: Path) -> Path:
    """Write ``stem.png`` (no version string in the metadata) and return its path."""
    path = stem.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def _draw_front(ax, front: pd.DataFrame) -> None:
    """Ring the Pareto-optimal points, join them with a dashed staircase, name them."""
    if front.empty:
        return
    front = front.sort_values(["x", "y"], ascending=[True, False])
    ax.scatter(front["x"], front["y"], s=90, facecolors="none", edgecolors="black", lw=0.8)
    ax.step(
        front["x"], front["y"], where="pre", ls="--", lw=0.8, color="black", label="Pareto front"
    )
    left, right = ax.get_xlim()
    rows = front[["checkpoint", "x", "y"]].itertuples(index=False)
    for i, (name, x, y) in enumerate(rows):
        flip = x > (left + right) / 2  # labels point inwards, so they stay inside the axes
        offset = (-5 if flip else 5, 4 if i % 2 == 0 else -9)  # alternate: neighbours
        ax.annotate(
            _plain(name),
            (x, y),
            xytext=offset,
            textcoords="offset points",
            ha="right" if flip else "left",
            fontsize=6,
        )


def _plain(text: str) -> str:
    """Text matplotlib draws as is: ``$`` would start mathtext."""
    return str(text).replace("$", r"\$")


def _algo_labels(board: pd.DataFrame) -> pd.Series:
    """The ``algo`` column as text, ``unknown`` where missing."""
    if "algo" not in board.columns:
        return pd.Series("unknown", index=board.index)
    return board["algo"].map(lambda v: "unknown" if pd.isna(v) or v == "" else str(v))


def _colours():
    """The palette, then grey forever."""
    yield from PALETTE
    while True:
        yield OTHER_COLOUR

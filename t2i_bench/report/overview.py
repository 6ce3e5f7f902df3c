"""The report's overview plots: a checkpoints × metrics heatmap of rank scores with the best
checkpoint per axis marked, and the axis scores of every checkpoint (the Pareto set over the
axes). Each plot is a function of one table, written as CSV beside its PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.patches import Rectangle

from t2i_bench.analysis.io import BASE_CHECKPOINT
from t2i_bench.prompt_types import AXES, prompt_type_order
from t2i_bench.report.leaderboard import write_csv
from t2i_bench.report.plots import RC, _colours, _figure, _plain, _save

#: Most checkpoints drawn in the heatmap (the base, each axis's best, then by rank score).
HEATMAP_ROWS = 40
OTHER_AXIS = "other"
HEATMAP_COLUMNS = (
    "checkpoint",
    "column",
    "metric",
    "prompt_type",
    "axis",
    "rank_score",
    "best_on_axis",
)
AXES_COLUMNS = ("checkpoint", "algo", "axis", "score", "pareto", "best_on_axis")


def axis_order(axis: str) -> int:
    """Registry order of the axes, unknown ones last."""
    names = list(AXES)
    return names.index(axis) if axis in names else len(names)


def heatmap_frame(
    rank_scores: pd.DataFrame,
    axes: Mapping[str, str],
    best: Mapping[str, str],
    checkpoints: Sequence[str],
) -> pd.DataFrame:
    """The heatmap's table: one row per checkpoint × ``metric.prompt_type`` with its rank score
    (1 = best), the metric's axis and whether the checkpoint is the best on that axis.

    ``rank_scores`` is :func:`~t2i_bench.analysis.ranking.rank_scale`'s output; ``best`` maps
    an axis to its best checkpoint; ``checkpoints`` gives the row order (leaderboard order),
    cut to :data:`HEATMAP_ROWS` (the base model and every axis's best always kept).
    """
    keep = _heatmap_rows(checkpoints, best)
    frame = rank_scores[rank_scores["checkpoint"].isin(keep)].copy()
    frame["axis"] = frame["metric"].map(lambda m: axes.get(m) or OTHER_AXIS)
    frame["column"] = frame["metric"] + "." + frame["prompt_type"]
    pairs = zip(frame["axis"], frame["checkpoint"], strict=True)
    frame["best_on_axis"] = [best.get(a) == c for a, c in pairs]
    row = {c: i for i, c in enumerate(keep)}
    frame["_row"] = frame["checkpoint"].map(row)
    frame["_axis"] = frame["axis"].map(axis_order)
    frame["_type"] = frame["prompt_type"].map(prompt_type_order)
    frame = frame.sort_values(["_row", "_axis", "metric", "_type"], kind="mergesort")
    return frame[list(HEATMAP_COLUMNS)].reset_index(drop=True)


def rank_heatmap(frame: pd.DataFrame, stem: Path) -> Path:
    """Checkpoints (rows) × metric columns grouped by axis, coloured by rank score; a box
    marks each axis's best checkpoint over that axis's columns."""
    write_csv(frame, stem.with_suffix(".csv"))
    rows = list(dict.fromkeys(frame["checkpoint"]))
    order = frame.drop_duplicates("column")
    order = order.assign(
        _axis=order["axis"].map(axis_order), _type=order["prompt_type"].map(prompt_type_order)
    ).sort_values(["_axis", "metric", "_type"], kind="mergesort")
    columns = order["column"].tolist()
    grid = frame.pivot(index="checkpoint", columns="column", values="rank_score")
    grid = grid.reindex(index=rows, columns=columns)
    axis_of = dict(zip(frame["column"], frame["axis"], strict=False))
    with rc_context(RC):
        fig, ax = _figure(max(5.0, 2.4 + 0.2 * len(columns)), max(2.4, 1.6 + 0.19 * len(rows)))
        image = ax.imshow(
            grid.to_numpy(dtype=np.float64), cmap="viridis", vmin=0, vmax=1, aspect="auto"
        )
        ax.set_xticks(range(len(columns)), [_plain(c) for c in columns], rotation=90, fontsize=6)
        ax.set_yticks(range(len(rows)), [_plain(r) for r in rows], fontsize=6)
        blocks = _blocks([axis_of[c] for c in columns])
        for axis, start, stop in blocks:
            if start:
                ax.axvline(start - 0.5, color="white", lw=2)
            ax.text(
                (start + stop - 1) / 2,
                -0.8,
                axis,
                ha="center",
                va="bottom",
                fontsize=7,
                fontweight="bold",
            )
            best = frame[frame["axis"].eq(axis) & frame["best_on_axis"]]["checkpoint"]
            for name in set(best):
                r = rows.index(name)
                ax.add_patch(
                    Rectangle(
                        (start - 0.5, r - 0.5), stop - start, 1, fill=False, ec="#D55E00", lw=1.6
                    )
                )
        ax.set_ylim(len(rows) - 0.5, -1.6)
        ax.spines[:].set_visible(False)
        bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
        bar.set_label("rank score (1 = best, whatever the direction)")
        return _save(fig, stem)


def axes_frame(scores: pd.DataFrame, algos: Mapping[str, str]) -> pd.DataFrame:
    """Long table of axis scores: checkpoint, algo, axis, score, pareto, best_on_axis, from
    :class:`~t2i_bench.analysis.choice.Choice`'s ``scores``."""
    axis_columns = [c for c in scores.columns if c.startswith("axis_") and "." not in c]
    rows = []
    for record in scores.to_dict("records"):
        best_for = str(record.get("best_for") or "").split(";")
        for column in axis_columns:
            axis = column.removeprefix("axis_")
            rows.append(
                {
                    "checkpoint": record["checkpoint"],
                    "algo": algos.get(record["checkpoint"], "unknown"),
                    "axis": axis,
                    "score": record[column],
                    "pareto": str(record.get("pareto")) == "True",
                    "best_on_axis": axis in best_for,
                }
            )
    return pd.DataFrame(rows, columns=list(AXES_COLUMNS))


def axes_plot(frame: pd.DataFrame, stem: Path) -> Path:
    """Parallel coordinates of the axis scores: a line per checkpoint (colour by algorithm,
    dashed grey off the Pareto set), each axis's best starred and named."""
    write_csv(frame, stem.with_suffix(".csv"))
    axes = sorted(dict.fromkeys(frame["axis"]), key=axis_order)
    x = {a: i for i, a in enumerate(axes)}
    with rc_context(RC):
        fig, ax = _figure(max(4.5, 1.3 * len(axes) + 2.5), 3.6)
        algos = sorted(set(frame["algo"]) - {BASE_CHECKPOINT})
        colour = dict(zip(algos, _colours(), strict=False))
        colour[BASE_CHECKPOINT] = "black"
        for name, line in frame.groupby("checkpoint", sort=True):
            line = line.sort_values("axis", key=lambda s: s.map(axis_order))
            on_front = bool(line["pareto"].iloc[0])
            algo = str(line["algo"].iloc[0])
            style = {"color": colour.get(algo, "#999999"), "lw": 1.0, "alpha": 0.8}
            if name == BASE_CHECKPOINT:
                style |= {"lw": 2.0, "ls": ":"}
            elif not on_front:
                style |= {"color": "#aaaaaa", "ls": "--", "lw": 0.8}
            ax.plot(line["axis"].map(x), line["score"], marker="o", ms=2.5, **style)
        best = frame[frame["best_on_axis"]]
        ax.scatter(best["axis"].map(x), best["score"], marker="*", s=120, color="#D55E00", zorder=5)
        for row in best.itertuples(index=False):
            last = x[row.axis] == len(axes) - 1  # label inwards, clear of the legend
            ax.annotate(
                _plain(row.checkpoint),
                (x[row.axis], row.score),
                xytext=(-4 if last else 4, 4),
                textcoords="offset points",
                ha="right" if last else "left",
                fontsize=6,
            )
        handles = [
            ax.plot([], [], color=colour[a], label=_plain(a))[0] for a in algos if a in colour
        ]
        handles.append(ax.plot([], [], color="black", ls=":", lw=2, label="base model")[0])
        handles.append(ax.plot([], [], color="#aaaaaa", ls="--", label="off the Pareto set")[0])
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.set_xticks(range(len(axes)), axes)
        ax.set_ylim(-0.05, 1.08)
        ax.set_ylabel("axis score (mean rank score, 1 = best)")
        ax.grid(True, axis="y", lw=0.3, alpha=0.5)
        return _save(fig, stem)


def _heatmap_rows(checkpoints: Sequence[str], best: Mapping[str, str]) -> list[str]:
    """The base, each axis's best, then the others in order, at most :data:`HEATMAP_ROWS`."""
    must = {BASE_CHECKPOINT, *best.values()}
    chosen = [c for c in checkpoints if c in must]
    for name in checkpoints:
        if len(chosen) >= HEATMAP_ROWS:
            break
        if name not in chosen:
            chosen.append(name)
    return [c for c in checkpoints if c in set(chosen)]


def _blocks(labels: list[str]) -> list[tuple[str, int, int]]:
    """Runs of equal labels: (label, start, stop)."""
    blocks: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        if blocks and blocks[-1][0] == label:
            blocks[-1] = (label, blocks[-1][1], i + 1)
        else:
            blocks.append((label, i, i + 1))
    return blocks

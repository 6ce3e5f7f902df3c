"""SHAP plots (PNG, Agg, deterministic), each written with the CSV of the numbers it shows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from t2i_bench.analysis.io import write_table

if TYPE_CHECKING:
    from t2i_bench.analysis.importance import ImportanceResult, TargetFit

DPI = 200
_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "svg.hashsalt": "t2i-bench",
}
_POINT_COLOR = "#1f4e79"


def summary_plot(result: ImportanceResult, stem: Path) -> tuple[str, str]:
    """Heatmap of each feature's share of a target's total mean |SHAP| (features × targets).

    Column labels carry the cross-validated R², so unreliable targets are visible.
    """
    table = result.importance[["target", "feature", "mean_abs_shap"]].copy()
    totals = table.groupby("target")["mean_abs_shap"].transform("sum")
    table["share"] = (table["mean_abs_shap"] / totals.where(totals > 0)).fillna(0.0)
    share = table.pivot(index="feature", columns="target", values="share")
    share = share.reindex(columns=list(result.fits)).fillna(0.0)
    share = share.loc[share.mean(axis=1).sort_values(ascending=False, kind="mergesort").index]
    r2 = result.r2.set_index("target")["r2_cv"]
    n_feat, n_tgt = share.shape
    with _figure((max(4.8, 2.4 + 0.7 * n_tgt), 1.6 + 0.38 * n_feat)) as fig:
        ax = fig.add_subplot()
        image = ax.imshow(share.to_numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_yticks(range(n_feat), list(share.index))
        labels = [f"{t}\nR²cv={r2[t]:.2f}" for t in share.columns]
        ax.set_xticks(range(n_tgt), labels, rotation=45, ha="right", rotation_mode="anchor")
        if n_tgt * n_feat <= 400:
            for (i, j), value in np.ndenumerate(share.to_numpy()):
                color = "white" if value > 0.6 else "black"
                ax.text(
                    j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=7, color=color
                )
        fig.colorbar(image, ax=ax, label="share of mean |SHAP|", fraction=0.08, pad=0.03)
        ax.set_title("Hyperparameter importance\n(% of each target's mean |SHAP|)")
        _save(fig, stem)
    write_table(table.sort_values(["target", "feature"], kind="mergesort"), _with(stem, ".csv"))
    return (f"{stem.name}.png", f"{stem.name}.csv")


def beeswarm_plot(fit: TargetFit, stem: Path, *, seed: int = 0) -> tuple[str, str]:
    """``shap.plots.beeswarm`` for one target; categorical features are drawn grey."""
    from t2i_bench.analysis.importance import import_shap

    shap = import_shap()
    explanation = shap.Explanation(
        values=fit.shap_values,
        base_values=np.full(fit.n_rows, fit.base_value),
        data=fit.features.to_numpy(dtype=object),
        feature_names=list(fit.features.columns),
    )
    height = 1.4 + 0.42 * min(fit.features.shape[1], 12)
    with _figure((7.5, height)) as fig, _seeded_global_rng(seed):
        ax = fig.add_subplot()
        shap.plots.beeswarm(explanation, max_display=12, ax=ax, plot_size=None, show=False)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.tick_params("y", labelsize=11)
        ax.xaxis.label.set_fontsize(11)
        ax.set_title(f"{fit.target}  (R²cv = {fit.r2_cv:.2f}, n = {fit.n_rows})")
        _save(fig, stem)
    numbers = pd.DataFrame({"checkpoint": fit.checkpoints, "target_value": fit.y})
    for j, name in enumerate(fit.features.columns):
        numbers[name] = fit.features[name].to_numpy()
        numbers[f"shap.{name}"] = fit.shap_values[:, j]
    write_table(numbers, _with(stem, ".csv"))
    return (f"{stem.name}.png", f"{stem.name}.csv")


def dependence_plot(fit: TargetFit, feature: str, stem: Path) -> tuple[str, str]:
    """SHAP value of ``feature`` against its value; categories as jittered strips.

    Points are coloured by the most important other numeric feature, to show interactions.
    """
    shap_col = fit.shap_values[:, fit.features.columns.get_loc(feature)]
    values = fit.features[feature]
    numbers = pd.DataFrame(
        {"checkpoint": fit.checkpoints, feature: values.to_numpy(), "shap": shap_col}
    )
    others = [f for f in fit.mean_abs_shap().index if f != feature and f not in fit.categorical]
    colour_by = others[0] if others else None
    style: dict = {"color": _POINT_COLOR}
    if colour_by is not None:
        numbers[f"colour.{colour_by}"] = fit.features[colour_by].to_numpy()
        style = {"c": fit.features[colour_by].to_numpy(dtype=float), "cmap": "viridis"}
    with _figure((5.2, 3.6)) as fig:
        ax = fig.add_subplot()
        if feature in fit.categorical:
            levels = sorted(values.unique())
            x = values.map({v: i for i, v in enumerate(levels)}).to_numpy(dtype=float)
            x = x + np.random.default_rng(0).uniform(-0.15, 0.15, size=x.size)
            ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
            ax.set_xlim(-0.6, len(levels) - 0.4)
        else:
            x = values.to_numpy(dtype=float)
        points = ax.scatter(x, shap_col, s=14, alpha=0.8, lw=0, **style)
        if colour_by is not None:
            fig.colorbar(points, ax=ax, label=_axis_label(colour_by), fraction=0.06, pad=0.03)
        ax.axhline(0.0, color="#999999", lw=0.8, zorder=0)
        ax.set_xlabel(_axis_label(feature))
        ax.set_ylabel(f"SHAP value for {fit.target}")
        ax.set_title(f"{fit.target}: dependence on {_axis_label(feature)}")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        _save(fig, stem)
    write_table(numbers, _with(stem, ".csv"))
    return (f"{stem.name}.png", f"{stem.name}.csv")


def _axis_label(feature: str) -> str:
    return "log10(learning rate)" if feature == "log10_lr" else feature


@contextmanager
def _figure(size: tuple[float, float]) -> Iterator[Figure]:
    """A pyplot-free Agg figure in the package style."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=size, dpi=DPI)
        FigureCanvasAgg(fig)
        yield fig


@contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """shap's beeswarm jitters with numpy's global RNG; seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _with(stem: Path, suffix: str) -> Path:
    """``stem`` plus a suffix (target names contain dots, so no ``with_suffix``)."""
    return stem.parent / f"{stem.name}{suffix}"


def _save(fig: Figure, stem: Path) -> None:
    """Save as PNG, atomically, with no version string in the metadata (byte-stable)."""
    target = _with(stem, ".png")
    tmp = _with(stem, ".png.tmp")
    fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    os.replace(tmp, target)

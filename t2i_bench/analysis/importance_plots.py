"""SHAP plots (PNG, Agg, deterministic), each written with the CSV of the numbers it shows.

Categorical features are drawn by level (a colour per level in the beeswarm, a strip per
level with the mean and its interval in the dependence plot), never greyed out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from scipy.stats import rankdata

from t2i_bench.analysis.effects import value_means
from t2i_bench.analysis.figures import axis_label as _axis_label
from t2i_bench.analysis.figures import figure as _figure
from t2i_bench.analysis.figures import save as _save
from t2i_bench.analysis.figures import with_suffix as _with
from t2i_bench.analysis.io import write_table

if TYPE_CHECKING:
    from t2i_bench.analysis.importance import ImportanceResult, TargetFit

_POINT_COLOR = "#1f4e79"
#: Features shown in a beeswarm and in a dependence grid, most important first.
MAX_FEATURES = 12
#: Levels named in a beeswarm row's legend.
MAX_LEGEND_LEVELS = 6


def summary_plot(result: ImportanceResult, stem: Path) -> tuple[str, str]:
    """Heatmap of each feature's share of a target's total mean |SHAP| (features × targets).

    Column labels carry the cross-validated R², so unreliable targets are visible.
    """
    records = [
        (result.group, target, feature, float(value))
        for target, fit in result.fits.items()
        for feature, value in fit.mean_abs_shap().items()
    ]
    table = pd.DataFrame(records, columns=["group", "target", "feature", "importance"])
    totals = table.groupby("target")["importance"].transform("sum")
    table["share"] = (table["importance"] / totals.where(totals > 0)).fillna(0.0)
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
        ax.set_title(f"Hyperparameter importance, {result.group}\n(% of each target's mean |SHAP|)")
        _save(fig, stem)
    write_table(table.sort_values(["target", "feature"], kind="mergesort"), _with(stem, ".csv"))
    return (f"{stem.name}.png", f"{stem.name}.csv")


def beeswarm_plot(fit: TargetFit, stem: Path, *, seed: int = 0) -> tuple[str, str]:
    """SHAP beeswarm of one target: a row per feature, a point per checkpoint.

    Numeric features are coloured by value (blue low, red high, by rank); categorical
    features by level, named in a legend beside the row (levels ordered by mean SHAP).
    The layout is deterministic (``seed`` is accepted for compatibility and unused).
    """
    del seed
    order = list(fit.mean_abs_shap().index[:MAX_FEATURES])
    cmap = matplotlib.colormaps["coolwarm"]
    palette = matplotlib.colormaps["tab10"]
    height = 1.4 + 0.46 * len(order)
    with _figure((8.4, height)) as fig:
        ax = fig.add_subplot()
        any_numeric = False
        legends = []
        for row, feature in enumerate(reversed(order)):
            shap = fit.shap_of(feature)
            y = row + _swarm_offsets(shap)
            values = fit.features[feature]
            if feature in fit.categorical:
                levels = _levels_by_effect(values, shap)
                colours = {lvl: palette(i % 10) for i, lvl in enumerate(levels)}
                ax.scatter(shap, y, s=9, lw=0, c=[colours[v] for v in values], zorder=3)
                legends.append(_row_legend(ax, row, len(order), levels, colours))
                continue
            any_numeric = True
            x = values.to_numpy(dtype=np.float64)
            present = ~np.isnan(x)
            colour = np.full(x.size, 0.5)
            if present.sum() > 1:
                colour[present] = (rankdata(x[present]) - 1) / (present.sum() - 1)
            ax.scatter(shap[~present], y[~present], s=9, lw=0, color="#bbbbbb", zorder=3)
            ax.scatter(
                shap[present], y[present], s=9, lw=0, c=colour[present], cmap=cmap, vmin=0, vmax=1
            )
        ax.axvline(0.0, color="#999999", lw=0.8, zorder=0)
        ax.set_yticks(range(len(order)), [_axis_label(f) for f in reversed(order)])
        ax.set_ylim(-0.6, len(order) - 0.4)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.set_xlabel(f"SHAP value (impact on {fit.target})")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if any_numeric:
            mappable = ScalarMappable(cmap=cmap, norm=Normalize(0.0, 1.0))
            bar = fig.colorbar(
                mappable, ax=ax, orientation="horizontal", fraction=0.04, pad=0.16, aspect=40
            )
            bar.set_ticks([0, 1], labels=["low", "high"])
            bar.set_label("numeric feature value (rank)")
        ax.set_title(f"{fit.target}, {fit.group}  (R²cv = {fit.r2_cv:.2f}, n = {fit.n_rows})")
        _save(fig, stem, legends)
    numbers = pd.DataFrame(
        {"group": fit.group, "checkpoint": fit.checkpoints, "target_value": fit.y}
    )
    for j, name in enumerate(fit.features.columns):
        numbers[name] = fit.features[name].to_numpy()
        numbers[f"shap.{name}"] = fit.shap_values[:, j]
    write_table(numbers, _with(stem, ".csv"))
    return (f"{stem.name}.png", f"{stem.name}.csv")


def dependence_plot(fit: TargetFit, effects: pd.DataFrame, stem: Path) -> tuple[str, str]:
    """SHAP value against feature value, one panel per feature (most important first).

    Numeric: a point per checkpoint and the mean per value (line), titled with the shape
    and Spearman ρ. Categorical: a strip per level with the level's mean SHAP and its
    bootstrap interval. ``effects`` are this target's rows of the importance table.
    """
    features = list(fit.mean_abs_shap().index[:MAX_FEATURES])
    ncols = min(3, len(features))
    nrows = math.ceil(len(features) / ncols)
    frames = []
    with _figure((4.2 * ncols, 3.2 * nrows)) as fig:
        for k, feature in enumerate(features):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            rows = effects[effects["feature"].eq(feature)]
            if feature in fit.categorical:
                _categorical_panel(ax, fit, feature, rows)
            else:
                _numeric_panel(ax, fit, feature, rows.iloc[0] if len(rows) else None)
            ax.axhline(0.0, color="#999999", lw=0.8, zorder=0)
            ax.tick_params(labelsize=8)
            if k % ncols == 0:
                ax.set_ylabel(f"SHAP for {fit.target}", fontsize=9)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            frames.append(
                pd.DataFrame(
                    {
                        "group": fit.group,
                        "checkpoint": fit.checkpoints,
                        "feature": feature,
                        "value": fit.features[feature].astype(str).to_numpy(),
                        "shap": fit.shap_of(feature),
                    }
                )
            )
        fig.suptitle(f"{fit.target}, {fit.group}: SHAP dependence (R²cv = {fit.r2_cv:.2f})")
        fig.tight_layout()
        _save(fig, stem)
    write_table(pd.concat(frames, ignore_index=True), _with(stem, ".csv"))
    return (f"{stem.name}.png", f"{stem.name}.csv")


def _numeric_panel(ax, fit: TargetFit, feature: str, row: pd.Series | None) -> None:
    x = fit.features[feature].to_numpy(dtype=np.float64)
    shap = fit.shap_of(feature)
    ax.scatter(x, shap, s=10, alpha=0.6, lw=0, color=_POINT_COLOR)
    means = value_means(x, shap)
    ax.plot(means.index, means.to_numpy(), color="black", lw=1.2, marker="o", ms=3)
    ax.set_xlabel(_axis_label(feature), fontsize=9)
    if row is not None:
        ax.set_title(f"{row['shape']} (ρ = {row['effect']:+.2f})", fontsize=9)


def _categorical_panel(ax, fit: TargetFit, feature: str, rows: pd.DataFrame) -> None:
    values = fit.features[feature]
    shap = fit.shap_of(feature)
    levels = _levels_by_effect(values, shap)
    position = {lvl: i for i, lvl in enumerate(levels)}
    x = values.map(position).to_numpy(dtype=np.float64) + _strip_offsets(values)
    ax.scatter(x, shap, s=10, alpha=0.5, lw=0, color=_POINT_COLOR)
    effects = rows.set_index("level").reindex(levels)
    centre = np.arange(len(levels))
    low = (effects["effect"] - effects["effect_ci_low"]).to_numpy(dtype=np.float64)
    high = (effects["effect_ci_high"] - effects["effect"]).to_numpy(dtype=np.float64)
    ax.errorbar(
        centre,
        effects["effect"].to_numpy(dtype=np.float64),
        yerr=np.vstack([np.nan_to_num(low), np.nan_to_num(high)]),
        fmt="o",
        color="black",
        ms=4,
        capsize=3,
        zorder=4,
    )
    ax.set_xticks(centre, [str(v) for v in levels], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(levels) - 0.4)
    ax.set_xlabel(feature, fontsize=9)
    ax.set_title("mean per level, 95% bootstrap CI", fontsize=9)


def _levels_by_effect(values: pd.Series, shap: np.ndarray) -> list[str]:
    """Levels sorted by their mean SHAP (lowest first), ties by name."""
    means = pd.Series(shap, index=values.to_numpy()).groupby(level=0).mean()
    return list(means.sort_index().sort_values(kind="mergesort").index)


def _row_legend(ax, row: int, n_rows: int, levels: list[str], colours: dict) -> Legend:
    shown = levels[::-1][:MAX_LEGEND_LEVELS]  # highest effect first
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=colours[lvl], label=str(lvl)) for lvl in shown
    ]
    if len(levels) > len(shown):
        handles.append(Line2D([], [], ls="", label=f"+{len(levels) - len(shown)} more"))
    legend = ax.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1.01, (row + 0.6) / (n_rows + 0.2)),
        fontsize=6,
        frameon=False,
        ncol=min(len(handles), 3),
        handletextpad=0.1,
        columnspacing=0.6,
        borderaxespad=0.2,
    )
    ax.add_artist(legend)
    return legend


def _swarm_offsets(x: np.ndarray, width: float = 0.36, bins: int = 60) -> np.ndarray:
    """Vertical offsets that spread points with similar x (a deterministic beeswarm)."""
    x = np.asarray(x, dtype=np.float64)
    offsets = np.zeros(x.size)
    if x.size < 2:
        return offsets
    span = float(np.ptp(x)) or 1.0
    which = np.minimum(((x - x.min()) / span * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    step = min(0.05, width / max(1.0, math.ceil(counts.max() / 2)))
    for b in np.flatnonzero(counts > 1):
        members = np.flatnonzero(which == b)
        members = members[np.argsort(x[members], kind="mergesort")]
        k = np.arange(members.size)
        offsets[members] = np.where(k % 2 == 1, 1, -1) * ((k + 1) // 2) * step
    return offsets


def _strip_offsets(values: pd.Series, width: float = 0.3) -> np.ndarray:
    """Evenly spread horizontal offsets within each level (deterministic jitter)."""
    offsets = np.zeros(len(values))
    codes = values.to_numpy()
    for level in pd.unique(codes):
        members = np.flatnonzero(codes == level)
        if members.size > 1:
            offsets[members] = np.linspace(-width / 2, width / 2, members.size)
    return offsets

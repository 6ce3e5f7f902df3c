"""Report sections that check the measurement itself: which metrics agree, how many seeds
are enough, memorised copies (nearest reference pairs) and the adapter-multiplier sweep.

Each plot is a function of one table, written as CSV beside its PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context

from t2i_bench.analysis.io import BASE_CHECKPOINT
from t2i_bench.metrics.agreement import agreement_matrix, square, write_agreement_csv
from t2i_bench.metrics.variance import COMPONENTS, variance_table, write_variance_csv
from t2i_bench.prompt_types import prompt_type_order
from t2i_bench.report.leaderboard import (
    CI_SUFFIXES,
    metric_value_columns,
    split_metric_column,
    write_csv,
)
from t2i_bench.report.plots import RC, _colours, _figure, _plain, _save

#: Axes whose metrics are drawn against the adapter multiplier (fidelity and, with bleed
#: among them, preservation).
MULTIPLIER_AXES = ("fidelity", "preservation")
#: Nearest pairs shown per metric and concept.
PAIRS_SHOWN = 12
COMPONENT_LABELS = {
    "checkpoint": "checkpoint",
    "prompt": "prompt",
    "seed": "seed",
    "checkpoint_prompt": "checkpoint × prompt",
    "residual": "checkpoint × seed (residual)",
}


# ---------------------------------------------------------------------- metric agreement


def write_agreement(
    metrics: pd.DataFrame, higher_is_better: Mapping[str, bool], out_dir: Path
) -> pd.DataFrame:
    """``agreement.csv``: Spearman correlation of every pair of metrics across checkpoints,
    per prompt type (:func:`~t2i_bench.metrics.agreement.agreement_matrix`)."""
    table = agreement_matrix(
        metrics[["metric", "checkpoint", "prompt_type", "value"]], higher_is_better
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_agreement_csv(table, out_dir / "agreement.csv")
    return table


def agreement_plot(table: pd.DataFrame, stem: Path) -> Path | None:
    """One metric × metric matrix of direction-aware Spearman correlations per prompt type
    (blue: they rank checkpoints alike, red: in tension); None without a pair."""
    write_csv(table, stem.with_suffix(".csv"))
    types = sorted(set(table["prompt_type"]), key=prompt_type_order)
    types = [t for t in types if len(square(table, t)) > 1]
    if not types:
        return None
    size = max(len(square(table, t)) for t in types)
    cols = min(3, len(types))
    rows = math.ceil(len(types) / cols)
    with rc_context(RC):
        fig, _ = _figure(cols * (1.2 + 0.32 * size), rows * (1.0 + 0.3 * size))
        fig.delaxes(fig.axes[0])
        image = None
        for k, prompt_type in enumerate(types):
            ax = fig.add_subplot(rows, cols, k + 1)
            matrix = square(table, prompt_type)
            values = matrix.to_numpy(dtype=np.float64)
            image = ax.imshow(values, cmap="RdBu", vmin=-1, vmax=1)
            names = [_plain(n) for n in matrix.index]
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
            ax.set_yticks(range(len(names)), names, fontsize=6)
            for (i, j), v in np.ndenumerate(values):
                if i != j and np.isfinite(v):
                    colour = "white" if abs(v) > 0.6 else "black"
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=5, color=colour)
            ax.set_title(prompt_type)
        if image is not None:
            bar = fig.colorbar(image, ax=fig.axes, fraction=0.02, pad=0.01)
            bar.set_label("Spearman ρ, oriented (+: rank checkpoints alike)")
        return _save(fig, stem)


# ---------------------------------------------------------------- variance and seed counts


@dataclass(frozen=True)
class SeedAdvice:
    """One per-image metric's variance breakdown in words."""

    metric: str
    prompt_type: str
    concept: str
    sentence: str
    shares: str


def write_variance(per_image: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """``variance.csv``: the variance breakdown of every per-image metric
    (:func:`~t2i_bench.metrics.variance.variance_table`) with the seeds per prompt needed to
    tell the checkpoints apart."""
    rows = per_image[per_image["kind"].eq("image") & per_image["value"].notna()]
    columns = ["metric", "concept", "prompt_type", "checkpoint", "prompt", "seed", "value"]
    table = variance_table(rows[columns].astype({"seed": "int64"}))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_variance_csv(table, out_dir / "variance.csv")
    return table


def seed_advice(table: pd.DataFrame) -> list[SeedAdvice]:
    """The sentence per (metric, concept, prompt type): "use N seeds per prompt to tell these
    checkpoints apart", or why no number of seeds will."""
    out = []
    for row in table.to_dict("records"):
        now = int(row["n_seeds"])
        total = sum(row[c] for c in COMPONENTS if np.isfinite(row[c]))
        if not total > 0:
            sentence = "every image has the same value: nothing to tell apart"
        elif not row["checkpoint"] > 0:
            sentence = (
                "the checkpoints do not differ on it beyond image-to-image noise: more seeds "
                "only narrow the intervals around equal values"
            )
        elif row["seeds_needed"] is None or pd.isna(row["seeds_needed"]):
            sentence = (
                "no number of seeds per prompt tells these checkpoints apart: the "
                "checkpoint × prompt spread alone is wider than their differences; use more "
                f"prompts (now {int(row['n_prompts'])})"
            )
        else:
            need = int(row["seeds_needed"])
            sentence = (
                f"use {need} seed{'s' if need != 1 else ''} per prompt to tell these "
                f"checkpoints apart (now {now}" + ("; enough)" if need <= now else ")")
            )
        shares = ", ".join(
            f"{COMPONENT_LABELS[c]} {row['share_' + c]:.0%}"
            for c in COMPONENTS
            if np.isfinite(row[c])
        )
        out.append(SeedAdvice(row["metric"], row["prompt_type"], row["concept"], sentence, shares))
    return out


def variance_plot(table: pd.DataFrame, stem: Path) -> Path | None:
    """Stacked bars: the share of each variance component per metric × prompt type."""
    frame = table.assign(
        label=table["metric"] + "." + table["prompt_type"] + " (" + table["concept"] + ")"
    )
    keep = ["label", *[f"share_{c}" for c in COMPONENTS], "seeds_needed", "n_seeds"]
    frame = frame[keep]
    write_csv(frame, stem.with_suffix(".csv"))
    if frame.empty:
        return None
    with rc_context(RC):
        fig, ax = _figure(6.4, 1.0 + 0.22 * len(frame))
        left = np.zeros(len(frame))
        rows = np.arange(len(frame))
        for component, colour in zip(COMPONENTS, _colours(), strict=False):
            share = frame[f"share_{component}"].fillna(0.0).to_numpy()
            ax.barh(rows, share, left=left, color=colour, label=COMPONENT_LABELS[component])
            left += share
        ax.set_yticks(rows, [_plain(t) for t in frame["label"]], fontsize=6)
        ax.set_ylim(len(frame) - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of the variance of one image's value")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _save(fig, stem)


# ------------------------------------------------------------------------ nearest pairs


@dataclass(frozen=True)
class PairView:
    """One generated image beside its nearest reference image."""

    metric: str
    checkpoint: str
    concept: str
    prompt_type: str
    prompt: str
    image: str  # thumbnail, relative to report/
    image_href: str
    reference: str
    reference_href: str
    distance: float
    threshold: float
    is_copy: bool


def nearest_pairs_frame(
    pairs: Sequence[tuple[str, str, str, str, object]], images: pd.DataFrame
) -> pd.DataFrame:
    """The nearest pairs as a table: metric, checkpoint, concept, prompt_type, prompt, image
    (run-relative path), image_key, reference_sha, distance, threshold, is_copy; per metric
    and concept the :data:`PAIRS_SHOWN` closest first."""
    lookup = images.drop_duplicates("image_key").set_index("image_key")
    rows = []
    for metric, checkpoint, concept, prompt_type, pair in pairs:
        key = pair.image_key  # type: ignore[attr-defined]
        if key not in lookup.index:
            continue
        rows.append(
            {
                "metric": metric,
                "checkpoint": checkpoint,
                "concept": concept,
                "prompt_type": prompt_type,
                "prompt": lookup.loc[key, "prompt"],
                "image": lookup.loc[key, "image"],
                "image_key": key,
                "reference_sha": pair.reference_sha,  # type: ignore[attr-defined]
                "distance": float(pair.distance),  # type: ignore[attr-defined]
                "threshold": float(pair.threshold),  # type: ignore[attr-defined]
                "is_copy": bool(pair.is_copy),  # type: ignore[attr-defined]
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "metric",
            "checkpoint",
            "concept",
            "prompt_type",
            "prompt",
            "image",
            "image_key",
            "reference_sha",
            "distance",
            "threshold",
            "is_copy",
        ],
    )
    frame = frame.sort_values(["metric", "concept", "distance", "image_key"], kind="mergesort")
    return frame.groupby(["metric", "concept"], sort=True).head(PAIRS_SHOWN).reset_index(drop=True)


# ------------------------------------------------------------------- multiplier sweeps


def multiplier_frame(board: pd.DataFrame, axes: Mapping[str, str]) -> pd.DataFrame:
    """Per adapter file swept over several multipliers: file, multiplier, checkpoint, column,
    value, ci_low, ci_high for the fidelity and preservation metrics; the base model's value
    as ``file`` = ``base``, multiplier 0. Empty when no file is swept."""
    needed = {"file", "multiplier", "checkpoint"}
    if not needed <= set(board.columns):
        return pd.DataFrame()
    adapters = board[board["checkpoint"].ne(BASE_CHECKPOINT) & board["file"].notna()]
    counts = adapters.groupby("file")["multiplier"].nunique()
    swept = adapters[adapters["file"].isin(counts[counts > 1].index)]
    if swept.empty:
        return pd.DataFrame()
    base = board[board["checkpoint"].eq(BASE_CHECKPOINT)].assign(
        file=BASE_CHECKPOINT, multiplier=0.0
    )
    rows = []
    columns = [
        c
        for c in metric_value_columns(board)
        if axes.get(split_metric_column(c)[0]) in MULTIPLIER_AXES
    ]
    for part in (swept, base):
        for record in part.to_dict("records"):
            for column in columns:
                rows.append(
                    {
                        "file": record["file"],
                        "multiplier": float(record["multiplier"]),
                        "checkpoint": record["checkpoint"],
                        "column": column,
                        "value": record[column],
                        "ci_low": record[column + CI_SUFFIXES[0]],
                        "ci_high": record[column + CI_SUFFIXES[1]],
                    }
                )
    frame = pd.DataFrame(rows)
    frame = frame[frame["value"].notna()]
    return frame.sort_values(["column", "file", "multiplier"], kind="mergesort").reset_index(
        drop=True
    )


def multiplier_plot(frame: pd.DataFrame, stem: Path) -> Path:
    """One panel per metric column: value against the multiplier, a line per adapter file
    starting from the base model at multiplier 0 (whiskers: 95% CIs; dashed: the base)."""
    write_csv(frame, stem.with_suffix(".csv"))
    columns = list(dict.fromkeys(frame["column"]))
    cols = min(3, len(columns))
    rows = math.ceil(len(columns) / cols)
    with rc_context(RC):
        fig, _ = _figure(cols * 2.6 + 1.6, rows * 2.1 + 0.4)
        fig.delaxes(fig.axes[0])
        files = sorted(set(frame["file"]) - {BASE_CHECKPOINT})
        colour = dict(zip(files, _colours(), strict=False))
        for k, column in enumerate(columns):
            ax = fig.add_subplot(rows, cols, k + 1)
            part = frame[frame["column"].eq(column)]
            base = part[part["file"].eq(BASE_CHECKPOINT)]
            for name in files:
                line = pd.concat([base, part[part["file"].eq(name)]])  # the base is multiplier 0
                err = np.vstack([line["value"] - line["ci_low"], line["ci_high"] - line["value"]])
                ax.errorbar(
                    line["multiplier"],
                    line["value"],
                    yerr=np.nan_to_num(err).clip(min=0),
                    marker="o",
                    ms=3,
                    lw=1,
                    capsize=2,
                    color=colour[name],
                    label=_plain(name) if k == 0 else None,
                )
            if len(base):
                ax.axhline(
                    float(base["value"].iloc[0]),
                    color="black",
                    ls="--",
                    lw=0.8,
                    label="base model" if k == 0 else None,
                )
            ax.set_title(_plain(column), fontsize=8)
            ax.set_xlabel("multiplier")
            ax.grid(True, lw=0.3, alpha=0.5)
        fig.legend(loc="outside right upper", frameon=False)
        return _save(fig, stem)

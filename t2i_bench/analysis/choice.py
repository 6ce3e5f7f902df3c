"""Which checkpoint should I use? The best per evaluation axis, whether it is significantly
better than the base model and than the runner-up, and the Pareto set over the axes.

An axis score is the LyCORIS paper's rank scaling (:mod:`t2i_bench.analysis.ranking`) read
per axis: within every (metric, concept, prompt type) the checkpoints are ranked, 1 = best
whatever the metric's direction; averaged over the concepts of a category, then over
categories; then over the prompt types of each metric, then over the metrics of the axis
(so a metric counts once however many prompt types it has).

Significance comes from a paired bootstrap over prompts and seeds: replicate b resamples the
same (prompt, seed) cells for every checkpoint (:func:`~t2i_bench.analysis.bootstrap.
resample_plan`), per-image metrics from their values, set metrics from the replicates stored
with them at score time; every replicate is ranked again and gives every checkpoint an axis
score. A checkpoint is significantly better than another on an axis when the 2.5% quantile
of the paired differences of their axis scores is above 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_bench.analysis.bootstrap import (
    GROUP_BOOTSTRAP_SEED,
    GROUP_REPLICATES,
    centred,
    resample_plan,
)
from t2i_bench.analysis.io import BASE_CHECKPOINT, DEFAULT_CATEGORY, write_table
from t2i_bench.analysis.ranking import SINGLE_CHECKPOINT_SCORE
from t2i_bench.prompt_types import AXES

#: (metric, checkpoint, concept, prompt_type) -> a set value's bootstrap replicates.
Replicates = Mapping[tuple[str, str, str, str], np.ndarray]
#: Level of the paired comparisons.
LEVEL = 0.95
#: Pareto-set members named in the console block.
PARETO_SHOWN = 6
CHOICE_COLUMNS = (
    "axis",
    "best",
    "score",
    "runner_up",
    "runner_up_score",
    "vs_runner_up_low",
    "vs_runner_up_high",
    "better_than_runner_up",
    "vs_base_low",
    "vs_base_high",
    "better_than_base",
    "metrics",
)


@dataclass
class Choice:
    """The answer per axis (``table``, one row per axis, columns :data:`CHOICE_COLUMNS`) and
    per checkpoint (``scores``: checkpoint, ``axis_<axis>`` scores, ``axis_<axis>.vs_base``
    = whether it is significantly better than the base model, ``pareto``, ``best_for``)."""

    table: pd.DataFrame
    scores: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """A short console block."""
        return summary_lines(self.table, self.scores)


def choose_checkpoints(
    metrics: pd.DataFrame,
    axes: Mapping[str, str],
    higher_is_better: Mapping[str, bool],
    replicates: Replicates | None = None,
    *,
    n_boot: int = GROUP_REPLICATES,
    seed: int = GROUP_BOOTSTRAP_SEED,
) -> Choice:
    """Best checkpoint per axis with paired-bootstrap comparisons (see the module docstring).

    ``metrics`` is the long metrics table (per-image rows with ``prompt`` and ``seed``, set
    rows without); ``axes`` maps a metric to its axis (metrics without one are left out);
    ``replicates`` holds the set values' stored bootstrap replicates (a set value without
    them counts with no uncertainty, and a warning says how many).
    """
    warnings: list[str] = []
    used = metrics[metrics["metric"].isin([m for m, a in axes.items() if a in AXES])]
    used = used[used["value"].notna()]
    columns, cube, missing = _replicate_cube(used, replicates or {}, n_boot, seed)
    if missing:
        warnings.append(
            f"{missing} set value(s) have no bootstrap replicates: their uncertainty is left "
            "out of the paired comparisons (score them again to store replicates)"
        )
    checkpoints = _checkpoint_order(used)
    if not columns:
        return Choice(_empty_table(), pd.DataFrame({"checkpoint": checkpoints}), warnings)
    scored = axis_scores(cube, columns, axes, higher_is_better)  # (B + 1, n_ckpt, n_axes)
    names = [a for a in AXES if a in {axes[c[0]] for c in columns}]
    point, reps = scored[0], scored[1:]
    table = _choice_table(point, reps, checkpoints, names, columns, axes)
    scores = _score_table(point, reps, checkpoints, names, table)
    return Choice(table, scores, warnings)


def axis_scores(
    cube: np.ndarray,
    columns: list[tuple[str, str, str, str]],
    axes: Mapping[str, str],
    higher_is_better: Mapping[str, bool],
) -> np.ndarray:
    """``(B, n_checkpoints, n_axes)`` axis scores from ``(B, n_checkpoints, n_columns)`` values
    (columns are (metric, prompt_type, category, concept); NaN = no value), axes in the
    registry's order among those present."""
    from scipy.stats import rankdata  # scipy.stats: ~0.4 s to import, only when computing

    sign = np.array([1.0 if higher_is_better.get(c[0], True) else -1.0 for c in columns])
    oriented = cube * sign
    finite = np.isfinite(oriented)
    ranks = rankdata(np.where(finite, oriented, np.nan), axis=1, nan_policy="omit")
    count = finite.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(count > 1, (ranks - 1.0) / (count - 1.0), SINGLE_CHECKPOINT_SCORE)
    scaled = np.where(finite, scaled, np.nan)
    # concepts -> categories -> prompt types -> metrics -> axis, each a mean of what exists
    per_metric_type = _mean_over(scaled, columns, lambda c: (c[0], c[1], c[2]))
    keys = sorted({(c[0], c[1], c[2]) for c in columns})
    per_metric_type = _mean_over(per_metric_type, keys, lambda k: (k[0], k[1]))
    keys = sorted({(c[0], c[1]) for c in columns})
    per_metric = _mean_over(per_metric_type, keys, lambda k: k[0])
    metrics = sorted({c[0] for c in columns})
    present = [a for a in AXES if a in {axes[m] for m in metrics}]
    return np.stack(
        [_nanmean(per_metric[..., [axes[m] == a for m in metrics]]) for a in present], axis=-1
    )


def pareto_set(scores: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``(n, k)`` scores (higher is better) that no other row
    dominates (at least as good on every axis, better on one); rows with a NaN are never in
    it."""
    valid = np.isfinite(scores).all(axis=1)
    mask = np.zeros(len(scores), dtype=bool)
    for i in np.flatnonzero(valid):
        others = scores[valid]
        dominated = ((others >= scores[i]).all(axis=1) & (others > scores[i]).any(axis=1)).any()
        mask[i] = not dominated
    return mask


def summary_lines(table: pd.DataFrame, scores: pd.DataFrame) -> list[str]:
    """The console block: one line per axis, then the Pareto set."""
    if table.empty:
        return []
    width = max(len(a) for a in table["axis"])
    lines = [
        f"Which checkpoint: best per axis (paired bootstrap over prompts and seeds, "
        f"{LEVEL:.0%}); details in analysis/choice.csv"
    ]
    for row in table.itertuples(index=False):
        parts = [f"  {row.axis:<{width}}  {row.best} ({row.score:.2f})"]
        if str(row.better_than_base) in ("True", "False"):
            better = str(row.better_than_base) == "True"
            parts.append("beats base" if better else "not clearly better than base")
        if isinstance(row.runner_up, str) and row.runner_up:
            better = str(row.better_than_runner_up) == "True"
            verdict = "beats" if better else "not clearly better than"
            parts.append(f"{verdict} runner-up {row.runner_up} ({row.runner_up_score:.2f})")
        lines.append("; ".join(parts))
    front = scores.loc[scores["pareto"].map(lambda v: str(v) == "True"), "checkpoint"].tolist()
    if front:
        shown = ", ".join(front[:PARETO_SHOWN]) + (", …" if len(front) > PARETO_SHOWN else "")
        lines.append(f"  Pareto set over the axes ({len(front)} of {len(scores)}): {shown}")
    return lines


def write_choice(choice: Choice, out_dir: Path) -> list[Path]:
    """``choice.csv`` (per axis) and ``axis_scores.csv`` (per checkpoint) in ``out_dir``."""
    return [
        write_table(choice.table, out_dir / "choice.csv"),
        write_table(choice.scores, out_dir / "axis_scores.csv"),
    ]


def read_choice_lines(out_dir: Path) -> list[str]:
    """The console block from the files :func:`write_choice` wrote (none when absent)."""
    paths = [out_dir / "choice.csv", out_dir / "axis_scores.csv"]
    if not all(p.is_file() for p in paths):
        return []
    table, scores = (pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in paths)
    return summary_lines(table, scores)


def _replicate_cube(
    metrics: pd.DataFrame, replicates: Replicates, n_boot: int, seed: int
) -> tuple[list[tuple[str, str, str, str]], np.ndarray, int]:
    """Columns (metric, prompt_type, category, concept) and ``(n_boot + 1, n_ckpt, n_cols)``
    values: index 0 the point values (group means), then the paired replicates."""
    data = metrics.copy()
    data["category"] = data["category"].fillna(DEFAULT_CATEGORY)
    checkpoints = _checkpoint_order(data)
    col_keys = ["metric", "prompt_type", "category", "concept"]
    columns = sorted(
        tuple(str(v) for v in k) for k in data[col_keys].drop_duplicates().itertuples(index=False)
    )
    cube = np.full((n_boot + 1, len(checkpoints), len(columns)), np.nan)
    plans: dict[tuple, object] = {}
    missing = 0
    if "image" in data:
        has_image = data["image"].notna() & data["image"].ne("")
    else:
        has_image = pd.Series(False, index=data.index)
    for (ckpt, metric, ptype, category, concept), rows in data.groupby(
        ["checkpoint", *col_keys], sort=True
    ):
        i, j = checkpoints.index(ckpt), columns.index((metric, ptype, category, concept))
        values = rows["value"].to_numpy(dtype=np.float64)
        cube[0, i, j] = float(values.mean())
        if len(rows) > 1 or bool(has_image[rows.index].all()):  # per-image values
            prompts = rows["prompt"].tolist() if "prompt" in rows else [""] * len(rows)
            seeds = rows["seed"].tolist() if "seed" in rows else list(range(len(rows)))
            key = (concept, ptype, tuple(zip(prompts, seeds, strict=True)))
            if key not in plans:
                plans[key] = resample_plan(
                    prompts, seeds, n_boot=n_boot, key=(concept, ptype), seed=seed
                )
            weights = plans[key].weights  # type: ignore[attr-defined]
            cube[1:, i, j] = weights @ values / weights.sum(axis=1)
            continue
        stored = replicates.get((metric, ckpt, concept, ptype))
        if len(values) == 1 and stored is not None and len(stored) == n_boot:
            cube[1:, i, j] = centred(values[0], stored)
        else:
            missing += 1
            cube[1:, i, j] = values.mean()
    return columns, cube, missing


def _checkpoint_order(metrics: pd.DataFrame) -> list[str]:
    """Base first, then the others by name."""
    names = sorted(set(metrics["checkpoint"].astype(str)))
    return sorted(names, key=lambda n: (n != BASE_CHECKPOINT, n))


def _mean_over(values: np.ndarray, keys: list, group_of) -> np.ndarray:
    """NaN-mean over the last axis within groups of ``keys`` (sorted group order)."""
    groups = sorted({group_of(k) for k in keys})
    return np.stack(
        [_nanmean(values[..., [group_of(k) == g for k in keys]]) for g in groups], axis=-1
    )


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the finite entries; NaN where there is none."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=-1)
    count = finite.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _difference(reps: np.ndarray, a: int, b: int, k: int) -> tuple[float, float]:
    """The central :data:`LEVEL` interval of the paired differences a − b on axis k."""
    diff = reps[:, a, k] - reps[:, b, k]
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return (np.nan, np.nan)
    alpha = (1.0 - LEVEL) / 2.0
    low, high = np.quantile(diff, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def _choice_table(
    point: np.ndarray,
    reps: np.ndarray,
    checkpoints: list[str],
    names: list[str],
    columns: list[tuple[str, str, str, str]],
    axes: Mapping[str, str],
) -> pd.DataFrame:
    rows = []
    base = checkpoints.index(BASE_CHECKPOINT) if BASE_CHECKPOINT in checkpoints else None
    for k, axis in enumerate(names):
        score = point[:, k]
        order = sorted(range(len(checkpoints)), key=lambda i: (-score[i], checkpoints[i]))
        ranked = [i for i in order if np.isfinite(score[i])]
        if not ranked:
            continue
        best = ranked[0]
        row = {
            "axis": axis,
            "best": checkpoints[best],
            "score": float(score[best]),
            "metrics": ";".join(sorted({c[0] for c in columns if axes[c[0]] == axis})),
        }
        if len(ranked) > 1:
            low, high = _difference(reps, best, ranked[1], k)
            row |= {
                "runner_up": checkpoints[ranked[1]],
                "runner_up_score": float(score[ranked[1]]),
                "vs_runner_up_low": low,
                "vs_runner_up_high": high,
                "better_than_runner_up": bool(low > 0),
            }
        if base is not None and best != base and np.isfinite(score[base]):
            low, high = _difference(reps, best, base, k)
            row |= {"vs_base_low": low, "vs_base_high": high, "better_than_base": bool(low > 0)}
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CHOICE_COLUMNS))


def _score_table(
    point: np.ndarray,
    reps: np.ndarray,
    checkpoints: list[str],
    names: list[str],
    table: pd.DataFrame,
) -> pd.DataFrame:
    out = pd.DataFrame({"checkpoint": checkpoints})
    base = checkpoints.index(BASE_CHECKPOINT) if BASE_CHECKPOINT in checkpoints else None
    for k, axis in enumerate(names):
        out[f"axis_{axis}"] = point[:, k]
        better = []
        for i in range(len(checkpoints)):
            if base is None or i == base or not np.isfinite(point[[i, base], k]).all():
                better.append(pd.NA)
            else:
                better.append(bool(_difference(reps, i, base, k)[0] > 0))
        out[f"axis_{axis}.vs_base"] = pd.array(better, dtype="boolean")
    front = pareto_set(point)
    out["pareto"] = pd.array(
        [bool(f) if np.isfinite(point[i]).all() else pd.NA for i, f in enumerate(front)],
        dtype="boolean",
    )
    best_for = {c: [] for c in checkpoints}
    for row in table.itertuples(index=False):
        best_for[row.best].append(row.axis)
    out["best_for"] = [";".join(best_for[c]) for c in checkpoints]
    return out


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=list(CHOICE_COLUMNS))

"""Aggregate the long metrics table: bootstrap summaries, seed statistics, the leaderboard."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from t2i_bench.analysis.bootstrap import bootstrap_mean_ci, group_seed
from t2i_bench.analysis.io import (
    BASE_CHECKPOINT,
    DEFAULT_CATEGORY,
    ID_COLUMNS,
    INTERVAL_COLUMNS,
    METRIC_KEY_COLUMNS,
    PROMPT_TYPES,
    RUN_COLUMNS,
    attach_configs,
    hyperparameter_columns,
    prepare_configs,
)
from t2i_bench.analysis.ranking import overall_rank_score, rank_scale
from t2i_bench.errors import BenchError

__all__ = [
    "across_seeds",
    "checkpoint_table",
    "leaderboard_table",
    "metric_column",
    "metric_columns",
    "pareto_front",
    "rank_scale",
    "round_significant",
    "summarize",
]

SUMMARY_COLUMNS = (
    *METRIC_KEY_COLUMNS,
    "mean",
    "std",
    "n",
    "n_missing",
    "ci_low",
    "ci_high",
)
#: Significant digits kept in the leaderboard.
SIGNIFICANT_DIGITS = 6


def summarize(
    metrics: pd.DataFrame, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """Mean, n and a percentile-bootstrap CI per checkpoint × concept × prompt type × metric.

    ``metrics`` is the long table (one value per row; per-image rows are pooled). NaN values
    are dropped and counted in ``n_missing``; ``n`` counts the values used. When the table has
    ``ci_low``/``ci_high`` columns, a group whose single value is a set value (no ``image``)
    takes its row's interval (a set metric's bootstrap over its images; NaN when it has
    none); otherwise n = 1 gives a CI equal to the value; n = 0 gives NaN. Each group's
    bootstrap stream is seeded from ``seed`` and the group key, so results are deterministic
    and do not depend on the other rows. Rows are sorted by the key columns.
    """
    missing = [c for c in (*METRIC_KEY_COLUMNS, "value") if c not in metrics.columns]
    if missing:
        raise BenchError(f"metrics table has no column {missing[0]!r}")
    if n_boot < 1 or not 0.0 < ci < 1.0:
        raise ValueError("n_boot must be >= 1 and ci in (0, 1)")
    keys = list(METRIC_KEY_COLUMNS)
    columns = {k: metrics[k] for k in keys}
    columns["category"] = columns["category"].fillna(DEFAULT_CATEGORY)
    for name, column in columns.items():
        if column.isna().any():
            raise BenchError(f"metrics table has an empty {name!r}")
    values = metrics["value"].astype("float64")
    given = all(c in metrics.columns for c in INTERVAL_COLUMNS)
    rows = []
    for key, group in values.groupby(list(columns.values()), sort=True):
        data = group.to_numpy()
        finite = np.sort(data[~np.isnan(data)])  # row order must not change the result
        mean, low, high = bootstrap_mean_ci(
            finite, n_boot=n_boot, ci=ci, seed=group_seed(seed, key)
        )
        if given and finite.size == 1:
            row = metrics.loc[group.index[~np.isnan(data)][0]]
            if _is_set_row(row):  # its own interval, NaN when it has none
                low, high = float(row["ci_low"]), float(row["ci_high"])
        std = float(finite.std(ddof=1)) if finite.size > 1 else np.nan
        rows.append((*key, mean, std, finite.size, data.size - finite.size, low, high))
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return out.astype({"n": "int64", "n_missing": "int64"})


def _is_set_row(row: pd.Series) -> bool:
    """A row holding a value for a whole group (no image), or one that carries an interval."""
    image = row.get("image")
    no_image = image is None or pd.isna(image) or image == ""
    return no_image or bool(np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]))


def across_seeds(summary: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of checkpoint means over training seeds, per configuration.

    Groups by ``config_id`` plus ``epoch``/``step`` when the configs table has them (so
    checkpoints of one configuration at different training lengths stay apart), and by
    concept, category, prompt type and metric. ``std`` uses ddof = 1 (NaN for one seed).
    """
    joined = attach_configs(summary, configs)
    stage = [c for c in ("epoch", "step") if c in joined.columns]
    keys = ["config_id", *stage, *METRIC_KEY_COLUMNS[1:]]
    constant = [
        c for c in hyperparameter_columns(configs) if c not in RUN_COLUMNS and c in joined.columns
    ]
    grouped = joined.groupby(keys, sort=True, dropna=False)
    out = grouped.agg(
        mean=("mean", "mean"),
        std=("mean", lambda s: s.std(ddof=1)),
        n_seeds=("mean", "count"),
        checkpoints=("checkpoint", lambda s: ";".join(sorted(s))),
    )
    if constant:
        out = grouped[constant].first().join(out)
    out = out.reset_index()
    return out[["config_id", *constant, *keys[1:], "mean", "std", "n_seeds", "checkpoints"]]


def metric_column(metric: str, prompt_type: str) -> str:
    """Wide-table column name of a metric under one prompt type: ``{metric}.{prompt_type}``."""
    return f"{metric}.{prompt_type}"


def metric_columns(summary: pd.DataFrame) -> list[str]:
    """Every ``{metric}.{prompt_type}`` column name, metrics by name, prompt types in order."""
    return [metric_column(m, p) for m, p in _ordered_pairs(summary)]


def checkpoint_table(
    summary: pd.DataFrame,
    configs: pd.DataFrame,
    *,
    with_ci: bool = False,
    on_missing: str = "error",
    warnings: list[str] | None = None,
) -> pd.DataFrame:
    """One row per checkpoint: the configs columns, then ``{metric}.{prompt_type}`` means.

    Means (and, with ``with_ci``, the ``.ci_low``/``.ci_high`` bounds) are averaged over
    concepts when a checkpoint has several. Unrounded; rows by checkpoint name, base included.
    This is the input of :func:`~t2i_bench.analysis.importance.fit_importance`.
    """
    fields = ["mean", "ci_low", "ci_high"] if with_ci else ["mean"]
    per_ckpt = (
        summary.groupby(["checkpoint", "metric", "prompt_type"], sort=True)[fields]
        .mean()
        .reset_index()
    )
    pairs = _ordered_pairs(per_ckpt)
    # every configured checkpoint gets a row, also one that failed and has no value
    names = set(per_ckpt["checkpoint"]) | set(configs.get("checkpoint", pd.Series(dtype=str)))
    index = pd.Index(sorted(names), name="checkpoint")
    columns: dict[str, pd.Series] = {}
    for metric, prompt_type in pairs:
        selected = per_ckpt["metric"].eq(metric) & per_ckpt["prompt_type"].eq(prompt_type)
        part = per_ckpt[selected].set_index("checkpoint").reindex(index)
        name = metric_column(metric, prompt_type)
        columns[name] = part["mean"]
        if with_ci:
            columns[f"{name}.ci_low"] = part["ci_low"]
            columns[f"{name}.ci_high"] = part["ci_high"]
    wide = pd.DataFrame(columns, index=index).reset_index()
    return attach_configs(wide, configs, on_missing=on_missing, warnings=warnings)[
        [*prepare_configs(configs).columns, *wide.columns[1:]]
    ]


def leaderboard_table(
    summary: pd.DataFrame,
    configs: pd.DataFrame,
    higher_is_better: Mapping[str, bool],
    *,
    on_missing: str = "error",
) -> pd.DataFrame:
    """The leaderboard: one row per checkpoint, deterministic, ready for ``leaderboard.csv``.

    Columns: ``checkpoint``, the hyperparameters, the ids (``run_id``, ``config_id``…),
    ``rank_score`` (mean rank-scaled score over all metric × prompt type pairs, 1 = best),
    then per metric × prompt type ``{metric}.{prompt_type}``, ``.ci_low`` and ``.ci_high`` (averaged
    over concepts). The base row comes first, then rows by ``rank_score`` (best first) and
    checkpoint name. Floats are rounded to 6 significant digits. ``attrs["warnings"]``
    lists metrics with no declared direction and dropped checkpoints.
    """
    warnings: list[str] = []
    scores = rank_scale(summary, higher_is_better)
    warnings.extend(scores.attrs["warnings"])
    table = checkpoint_table(
        summary, configs, with_ci=True, on_missing=on_missing, warnings=warnings
    )
    table = table.merge(overall_rank_score(scores).reset_index(), on="checkpoint", how="left")
    config_cols = list(prepare_configs(configs).columns)
    hyper = hyperparameter_columns(prepare_configs(configs))
    ids = [c for c in ID_COLUMNS if c in config_cols and c != "checkpoint"]
    metric_cols = [c for c in table.columns if c not in {*config_cols, "rank_score"}]
    table = table[["checkpoint", *hyper, *ids, "rank_score", *metric_cols]]
    order = table.assign(
        _base=table["checkpoint"].ne(BASE_CHECKPOINT),
        _score=-table["rank_score"].fillna(-np.inf),
    ).sort_values(["_base", "_score", "checkpoint"], kind="mergesort")
    table = table.loc[order.index].reset_index(drop=True)
    for col in table.columns:
        if pd.api.types.is_float_dtype(table[col]):
            table[col] = round_significant(table[col].to_numpy(), SIGNIFICANT_DIGITS)
    table.attrs["warnings"] = warnings
    return table


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """Boolean mask (aligned with ``df.index``) of the points no other point dominates.

    Both axes are higher-is-better; a point is dominated when another is at least as good on
    both and strictly better on one. Rows with NaN in ``x`` or ``y`` are never on the front;
    identical points are both kept.
    """
    xs = df[x].to_numpy(dtype=np.float64)
    ys = df[y].to_numpy(dtype=np.float64)
    mask = np.zeros(len(df), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(xs) | np.isnan(ys)))
    best_y = -np.inf
    for x_value in np.unique(xs[valid])[::-1]:
        same = valid[xs[valid] == x_value]
        top = ys[same].max()
        if top > best_y:
            mask[same[ys[same] == top]] = True
            best_y = top
    return pd.Series(mask, index=df.index, name="pareto")


def round_significant(values: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """Round each finite float to ``digits`` significant digits (NaN and inf unchanged)."""
    return np.array([float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)])


def _ordered_pairs(per_ckpt: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, prompt type) pairs: metrics by name, prompt types in pipeline order."""
    known = {p: i for i, p in enumerate(PROMPT_TYPES)}
    pairs = per_ckpt[["metric", "prompt_type"]].drop_duplicates().itertuples(index=False)
    return sorted(
        ((m, p) for m, p in pairs),
        key=lambda mp: (mp[0], known.get(mp[1], len(known)), mp[1]),
    )

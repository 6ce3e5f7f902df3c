"""Analysis groups (``--by``) and the per-checkpoint target table of each group.

A group is ``all`` (every analysed checkpoint) or one value of a ``--by`` column, labelled
``column=value`` (``category=people``). A ``--by`` column is either a column of the metrics
table that describes what a value is about (``concept``, ``category``) or a hyperparameter
of the configs table (``algo``); several ``--by`` columns give one analysis per value of
each, not their cross product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from t2i_bench.analysis.aggregate import checkpoint_table, metric_columns
from t2i_bench.analysis.io import BASE_CHECKPOINT, ID_COLUMNS, prepare_configs
from t2i_bench.analysis.ranking import rank_scale
from t2i_bench.errors import BenchError

#: Columns of the metrics table an analysis can be split by.
METRIC_GROUP_COLUMNS = ("concept", "category")
#: Label of the analysis over every checkpoint.
POOLED = "all"
NORMALISATIONS = ("raw", "rank")


@dataclass(frozen=True)
class Group:
    """One analysis: ``all``, or the rows where ``column`` equals ``value``."""

    label: str
    column: str | None = None
    value: object = None


def check_by(by: Sequence[str], configs: pd.DataFrame) -> None:
    """BenchError naming a ``--by`` column that is neither a metrics nor a configs column."""
    allowed = [*METRIC_GROUP_COLUMNS, *(c for c in configs.columns if c not in ID_COLUMNS)]
    for column in by:
        if column not in allowed:
            raise BenchError(
                f"--by {column!r}: not a column to group by (choose from {', '.join(allowed)})"
            )


def analysis_groups(summary: pd.DataFrame, configs: pd.DataFrame, by: Sequence[str]) -> list[Group]:
    """``all`` first, then one group per value of each ``by`` column (values sorted)."""
    groups = [Group(POOLED)]
    for column in dict.fromkeys(by):
        if column in METRIC_GROUP_COLUMNS:
            values = summary[column].dropna().unique()
        else:
            adapters = configs[configs["checkpoint"].ne(BASE_CHECKPOINT)]
            values = adapters[column].dropna().unique()
        for value in sorted(values):
            groups.append(Group(group_label(column, value), column, value))
    return groups


def group_label(column: str, value: object) -> str:
    """``column=value``; numbers as ``%g``."""
    text = f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
    return f"{column}={text}"


def select_group(
    summary: pd.DataFrame, configs: pd.DataFrame, group: Group
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary rows and configs rows of one group."""
    if group.column is None:
        return summary, configs
    if group.column in METRIC_GROUP_COLUMNS:
        return summary[summary[group.column].eq(group.value)], configs
    chosen = configs[configs[group.column].eq(group.value)]
    return summary[summary["checkpoint"].isin(chosen["checkpoint"])], chosen


def target_table(
    summary: pd.DataFrame,
    configs: pd.DataFrame,
    normalise: str = "raw",
    higher_is_better: Mapping[str, bool] | None = None,
) -> pd.DataFrame:
    """One row per checkpoint with a value: configs columns, then ``{metric}.{prompt_type}``.

    ``raw``: means averaged over concepts (:func:`checkpoint_table`). ``rank``: the rank
    scores of :func:`~t2i_bench.analysis.ranking.rank_scale` among these checkpoints (1 =
    best whatever the metric's direction), within each metric, concept and prompt type,
    averaged over concepts, then categories. The base model is left out (it is never fitted).
    """
    if normalise not in NORMALISATIONS:
        raise BenchError(f"normalise must be 'raw' or 'rank', not {normalise!r}")
    summary = summary[summary["checkpoint"].ne(BASE_CHECKPOINT)]
    configs = prepare_configs(configs)
    if normalise == "rank":
        scores = rank_scale(summary, higher_is_better or {})
        summary = scores.rename(columns={"rank_score": "mean"})
    table = checkpoint_table(summary, configs[configs["checkpoint"].isin(summary["checkpoint"])])
    values = [c for c in metric_columns(summary) if c in table.columns]
    keep = table["checkpoint"].ne(BASE_CHECKPOINT) & table[values].notna().any(axis=1)
    return table[keep].reset_index(drop=True)

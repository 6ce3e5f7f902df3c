"""The leaderboard's columns, metric directions and the trade-off axes read from it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_bench.analysis.io import csv_safe
from t2i_bench.columns import CHECKPOINT, CI_SUFFIXES, ID_COLUMNS, METRIC_SEPARATOR
from t2i_bench.metrics.base import Metric
from t2i_bench.store import atomic_write_bytes

#: Leaderboard columns that identify rows and are left out of the HTML table.
HIDDEN_COLUMNS = tuple(c for c in ID_COLUMNS if c != CHECKPOINT)


@dataclass(frozen=True)
class Axis:
    """One axis of the trade-off plot: a metric averaged over some prompt types."""

    metric: str
    prompt_types: tuple[str, ...]
    label: str

    def columns(self, board: pd.DataFrame) -> list[str]:
        """The ``{metric}.{prompt_type}`` columns of ``board`` this axis averages."""
        wanted = [f"{self.metric}{METRIC_SEPARATOR}{p}" for p in self.prompt_types]
        return [c for c in wanted if c in board.columns]

    def describe(self, board: pd.DataFrame) -> str:
        """Axis label naming the prompt types actually averaged."""
        used = [split_metric_column(c)[1] for c in self.columns(board)]
        return f"{self.label}: {self.metric} ({', '.join(used)})"


@dataclass(frozen=True)
class Tradeoff:
    """The fidelity-vs-controllability plot's axes (x: controllability, y: fidelity)."""

    x: Axis
    y: Axis

    @classmethod
    def for_metrics(cls, metrics: Sequence[Metric]) -> Tradeoff | None:
        """The first configured metric of each axis, over its prompt types; None when the run
        has no metric of one of them."""
        chosen = {}
        for axis in ("controllability", "fidelity"):
            metric = next((m for m in metrics if m.axis == axis), None)
            if metric is None:
                return None
            chosen[axis] = Axis(metric.name, tuple(metric.prompt_types), axis)
        return cls(chosen["controllability"], chosen["fidelity"])


def directions(metrics: Iterable[Metric]) -> dict[str, bool]:
    """metric name -> higher is better, from the plugins' declarations."""
    return {m.name: bool(m.higher_is_better) for m in metrics}


def metric_value_columns(board: pd.DataFrame) -> list[str]:
    """The ``{metric}.{prompt_type}`` mean columns (CI bound columns excluded)."""
    return [
        c
        for c in board.columns
        if METRIC_SEPARATOR in c
        and not c.endswith(CI_SUFFIXES)
        and f"{c}{CI_SUFFIXES[0]}" in board.columns
    ]


def info_columns(board: pd.DataFrame) -> list[str]:
    """Columns shown before the metrics: checkpoint, hyperparameters, rank score."""
    metric_cols = set(metric_value_columns(board))
    bounds = {f"{c}{s}" for c in metric_cols for s in CI_SUFFIXES}
    skip = metric_cols | bounds | set(HIDDEN_COLUMNS)
    return [c for c in board.columns if c not in skip]


def split_metric_column(column: str) -> tuple[str, str]:
    """``clip_t.alter`` -> (``clip_t``, ``alter``)."""
    metric, _, prompt_type = column.partition(METRIC_SEPARATOR)
    return metric, prompt_type


def axis_values(board: pd.DataFrame, axis: Axis) -> pd.Series:
    """Per-row mean of the axis's columns (NaN where none has a value)."""
    columns = axis.columns(board)
    if not columns:
        return pd.Series(np.nan, index=board.index, dtype="float64")
    return board[columns].astype("float64").mean(axis=1, skipna=True)


def write_csv(frame: pd.DataFrame, path: Path, float_format: str | None = "%.6g") -> Path:
    """Deterministic CSV (fixed float format, ``\\n`` line ends), written atomically; text
    cells that a spreadsheet would run as formulas are neutralised (:func:`csv_safe`)."""
    text = csv_safe(frame).to_csv(index=False, float_format=float_format, lineterminator="\n")
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def present_metrics(board: pd.DataFrame) -> list[str]:
    """Metric names with at least one column in ``board``, in column order."""
    names: list[str] = []
    for column in metric_value_columns(board):
        metric = split_metric_column(column)[0]
        if metric not in names:
            names.append(metric)
    return names


def prompt_types_of(board: pd.DataFrame, metric: str) -> Sequence[str]:
    """The prompt types ``metric`` has columns for, in column order."""
    return [
        split_metric_column(c)[1]
        for c in metric_value_columns(board)
        if split_metric_column(c)[0] == metric
    ]

"""Hyperparameter features for the importance model, and configuration groups for honest CV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from t2i_bench.analysis.io import BASE_CHECKPOINT
from t2i_bench.errors import BenchError

#: Features used when none are given; those absent from the table are skipped.
DEFAULT_FEATURES = ("algo", "preset", "lr", "dim", "alpha", "factor", "epoch", "step")
#: Features treated as categorical when none are given (string columns always are).
DEFAULT_CATEGORICAL = ("algo", "preset")
#: Columns whose connected components define a configuration for cross-validation.
GROUP_COLUMNS = ("config_id", "run_id")
#: Features that vary within one configuration (training length); not used to derive groups.
STAGE_FEATURES = ("epoch", "step", "seed")
#: Value given to a missing categorical feature.
MISSING_CATEGORY = "(missing)"
LOG_LR = "log10_lr"


@dataclass(frozen=True)
class FeatureMatrix:
    """Model inputs: ``frame`` has one column per feature, categoricals as strings."""

    frame: pd.DataFrame
    categorical: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Feature names in column order."""
        return list(self.frame.columns)


def model_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows a model is fitted on: every checkpoint but the base model."""
    if "checkpoint" not in table.columns:
        return table
    return table[table["checkpoint"].ne(BASE_CHECKPOINT)]


def build_features(
    table: pd.DataFrame,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
) -> FeatureMatrix:
    """Select and transform feature columns of a per-checkpoint table.

    ``lr`` becomes ``log10_lr`` (``log10_lr`` may also be named directly when the table has
    ``lr``). Numeric features are float64 with NaN kept; categorical features (``categorical``
    plus every non-numeric column) are strings with NaN as ``"(missing)"``. Constant
    features are dropped with a warning. Raises BenchError for a named feature that is not
    in the table, a non-positive learning rate or no usable feature at all.
    """
    explicit = features is not None
    wanted = [_canonical(f) for f in (features if explicit else DEFAULT_FEATURES)]
    cats = {
        _canonical(c) for c in (categorical if categorical is not None else DEFAULT_CATEGORICAL)
    }
    frame = pd.DataFrame(index=table.index)
    warnings: list[str] = []
    categorical_names: list[str] = []
    for name in dict.fromkeys(wanted):
        source = "lr" if name == LOG_LR and LOG_LR not in table.columns else name
        if source not in table.columns:
            if explicit:
                raise BenchError(f"feature {name!r} is not a column of the table")
            continue
        column = table[source]
        if name in cats or not pd.api.types.is_numeric_dtype(column):
            text = column.map(lambda v: MISSING_CATEGORY if pd.isna(v) else str(v))
            frame[name] = text.astype("object")
            categorical_names.append(name)
            continue
        values = column.astype("float64")
        if source != name:
            if (values <= 0).any():
                raise BenchError("learning rate 'lr' must be positive to take log10")
            values = np.log10(values)
        frame[name] = values
    for name in list(frame.columns):
        if frame[name].nunique(dropna=True) < 2:
            warnings.append(f"feature {name!r} is constant over the checkpoints; not used")
            frame = frame.drop(columns=name)
    if frame.shape[1] == 0:
        raise BenchError("no hyperparameter feature varies over the checkpoints")
    categorical_names = [c for c in categorical_names if c in frame.columns]
    return FeatureMatrix(frame=frame, categorical=categorical_names, warnings=warnings)


def config_groups(table: pd.DataFrame, features: FeatureMatrix | None = None) -> np.ndarray:
    """Integer configuration group per row, for grouped cross-validation.

    Rows sharing a ``config_id`` or a ``run_id`` (transitively) are one group, so all seeds
    and all epochs of a configuration stay on the same side of a split. Without either
    column, rows with equal feature values apart from epoch/step/seed form a group.
    """
    columns = [c for c in GROUP_COLUMNS if c in table.columns]
    if not columns:
        if features is None:
            raise BenchError("the table has neither 'config_id' nor 'run_id'")
        defining = [c for c in features.names if c not in STAGE_FEATURES]
        key = features.frame[defining].astype(str).agg("|".join, axis=1)
        return pd.factorize(key, sort=True)[0]
    parent = list(range(len(table)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for col in columns:
        first_row: dict[str, int] = {}
        for row, label in enumerate(table[col].to_numpy()):
            if pd.isna(label):
                continue
            anchor = first_row.setdefault(str(label), row)
            parent[find(row)] = find(anchor)
    roots = [find(i) for i in range(len(table))]
    return pd.factorize(pd.Series(roots), sort=True)[0]


def grouped_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number per row; each group lands in exactly one fold (shuffled, seeded)."""
    unique = np.unique(groups)
    order = np.random.default_rng(seed).permutation(unique.size)
    fold_of_group = np.empty(unique.size, dtype=np.int64)
    fold_of_group[order] = np.arange(unique.size) % n_folds
    return fold_of_group[np.searchsorted(unique, groups)]


def _canonical(name: str) -> str:
    return LOG_LR if name == "lr" else name

"""Which hyperparameters drive each metric: CatBoost per target, SHAP, grouped-CV R².

One :func:`fit_importance` call analyses one group of checkpoints (``all``, or e.g.
``category=people``); the tables it gives carry that label in their ``group`` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from t2i_bench.analysis.bootstrap import group_seed
from t2i_bench.analysis.confounding import Confound, fold_confounded
from t2i_bench.analysis.effects import (
    effect_shape,
    interaction_pairs,
    level_effects,
    numeric_effect,
    sign_agreement,
)
from t2i_bench.analysis.features import (
    LOG_LR,
    FeatureMatrix,
    build_features,
    config_groups,
    grouped_folds,
    model_rows,
)
from t2i_bench.errors import BenchError

#: Fewest checkpoints with a target value for a fit.
MIN_ROWS = 8
#: CatBoost settings; small data, so shallow trees and modest iterations.
DEFAULT_ITERATIONS = 300
DEFAULT_DEPTH = 4
DEFAULT_LEARNING_RATE = 0.05
#: Categorical features with up to this many levels are one-hot encoded (no target
#: statistics), so a level's SHAP value is its own effect.
ONE_HOT_MAX_SIZE = 255
#: At or below this cross-validated R² the importances do not generalise (a warning says so).
R2_CV_THRESHOLD = 0.1
#: Interaction pairs kept per target in ``interactions.csv``.
TOP_INTERACTIONS = 5
#: Label of the analysis over every checkpoint.
POOLED = "all"
IMPORTANCE_COLUMNS = (
    "group",
    "target",
    "feature",
    "level",
    "importance",
    "rank",
    "effect",
    "effect_ci_low",
    "effect_ci_high",
    "sign",
    "sign_agreement",
    "shape",
    "shape_at",
    "n",
    "aliases",
)


@dataclass(frozen=True)
class TargetFit:
    """One target's model inputs, SHAP values and fit quality."""

    target: str
    checkpoints: list[str]
    features: pd.DataFrame
    categorical: list[str]
    y: np.ndarray
    shap_values: np.ndarray
    base_value: float
    r2_train: float
    r2_cv: float
    n_configs: int
    cv_prediction: np.ndarray
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fold_shap: list[np.ndarray] = field(default_factory=list)
    interactions: np.ndarray | None = None
    group: str = POOLED

    @property
    def n_rows(self) -> int:
        """Checkpoints the model was fitted on."""
        return len(self.y)

    def mean_abs_shap(self) -> pd.Series:
        """Mean |SHAP| per feature, largest first (ties by name)."""
        values = pd.Series(np.abs(self.shap_values).mean(axis=0), index=self.features.columns)
        return values.sort_index().sort_values(ascending=False, kind="mergesort")

    def shap_of(self, feature: str, shap: np.ndarray | None = None) -> np.ndarray:
        """One feature's SHAP column (of ``shap``, default the full model's)."""
        values = self.shap_values if shap is None else shap
        return values[:, self.features.columns.get_loc(feature)]

    def effect_correlation(self, feature: str) -> float:
        """Spearman ρ of a numeric feature's value with its SHAP value (NaN if none)."""
        if feature in self.categorical:
            return np.nan
        return numeric_effect(self.features[feature].to_numpy(np.float64), self.shap_of(feature))


@dataclass(frozen=True)
class ImportanceResult:
    """Per-target fits of one group plus the settings used; tables as properties."""

    fits: dict[str, TargetFit]
    features: list[str]
    categorical: list[str]
    cv_folds: int
    seed: int
    warnings: list[str] = field(default_factory=list)
    group: str = POOLED
    confounds: list[Confound] = field(default_factory=list)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    r2_threshold: float = R2_CV_THRESHOLD
    n_boot: int = 1000
    ci: float = 0.95

    @cached_property
    def importance(self) -> pd.DataFrame:
        """The ``importance.csv`` table (columns :data:`IMPORTANCE_COLUMNS`)."""
        rows: list[tuple] = []
        for fit in self.fits.values():
            for rank, (feature, value) in enumerate(fit.mean_abs_shap().items(), start=1):
                rows.extend(self._feature_rows(fit, feature, float(value), rank))
        return pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS))

    @property
    def r2(self) -> pd.DataFrame:
        """group, target, r2_train, r2_cv, n_rows, n_configs, cv_folds, generalises."""
        rows = [
            (self.group, t, f.r2_train, f.r2_cv, f.n_rows, f.n_configs, self.cv_folds)
            for t, f in self.fits.items()
        ]
        columns = ["group", "target", "r2_train", "r2_cv", "n_rows", "n_configs", "cv_folds"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["generalises"] = frame["r2_cv"] > self.r2_threshold
        return frame

    @property
    def interactions(self) -> pd.DataFrame:
        """The strongest :data:`TOP_INTERACTIONS` SHAP interaction pairs per target."""
        parts = []
        for target, fit in self.fits.items():
            if fit.interactions is None or fit.features.shape[1] < 2:
                continue
            pairs = interaction_pairs(fit.interactions, list(fit.features.columns))
            pairs = pairs[pairs["interaction"] > 0].head(TOP_INTERACTIONS)
            pairs.insert(0, "target", target)
            pairs["rank"] = np.arange(1, len(pairs) + 1)
            parts.append(pairs)
        columns = ["group", "target", "feature_a", "feature_b", "interaction", "rank"]
        if not parts:
            return pd.DataFrame(columns=columns)
        frame = pd.concat(parts, ignore_index=True)
        frame.insert(0, "group", self.group)
        return frame[columns]

    @property
    def confounding(self) -> pd.DataFrame:
        """group, feature, other, kind, detail, action: one row per confounded pair."""
        rows = [
            (self.group, c.feature, c.other, c.kind, c.detail, c.action) for c in self.confounds
        ]
        return pd.DataFrame(rows, columns=["group", "feature", "other", "kind", "detail", "action"])

    @property
    def low_fit_warnings(self) -> list[str]:
        """One line per target whose cross-validated R² is at or below the threshold."""
        return [
            f"[{self.group}] target {t!r}: cross-validated R² = {f.r2_cv:.2f} (in-sample "
            f"{f.r2_train:.2f}) is at or below {self.r2_threshold:g}: its importances describe "
            "this sweep only and do not generalise to new configurations"
            for t, f in self.fits.items()
            if not f.r2_cv > self.r2_threshold
        ]

    def _feature_rows(self, fit: TargetFit, feature: str, value: float, rank: int) -> list[tuple]:
        aliases = ";".join(self.aliases.get(feature, []))
        head = (self.group, fit.target, feature)
        if feature in fit.categorical:
            levels = fit.features[feature].to_numpy(dtype=object)
            seed = group_seed(self.seed, (self.group, fit.target, feature))
            table = level_effects(
                levels, fit.shap_of(feature), fit.groups, n_boot=self.n_boot, ci=self.ci, seed=seed
            )
            rows = []
            for row in table.itertuples(index=False):
                folds = [fit.shap_of(feature, s)[levels == row.level].mean() for s in fit.fold_shap]
                agreement = sign_agreement(row.effect, folds)
                rows.append(
                    (*head, row.level, value, rank, row.effect, row.ci_low, row.ci_high)
                    + (float(np.sign(row.effect)), agreement, "", np.nan, row.n, aliases)
                )
            return rows
        x = fit.features[feature].to_numpy(dtype=np.float64)
        effect = numeric_effect(x, fit.shap_of(feature))
        folds = [numeric_effect(x, fit.shap_of(feature, s)) for s in fit.fold_shap]
        display = (lambda v: 10.0**v) if feature == LOG_LR else float
        shape, at = effect_shape(x, fit.shap_of(feature), float(np.std(fit.y)), display)
        sign = float(np.sign(np.nan_to_num(effect)))
        n = int((~np.isnan(x)).sum())
        agreement = sign_agreement(effect, folds)
        return [
            (*head, "", value, rank, effect, np.nan, np.nan, sign, agreement, shape, at, n, aliases)
        ]


def fit_importance(
    table: pd.DataFrame,
    targets: Sequence[str],
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    seed: int = 0,
    cv_folds: int = 5,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    depth: int = DEFAULT_DEPTH,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    thread_count: int = 2,
    skip_insufficient: bool = False,
    group: str = POOLED,
    fold: bool = True,
    r2_threshold: float = R2_CV_THRESHOLD,
    n_boot: int = 1000,
) -> ImportanceResult:
    """Fit one CatBoost regressor per target on hyperparameter features and explain it.

    ``table`` has one row per checkpoint (see
    :func:`~t2i_bench.analysis.aggregate.checkpoint_table`); the ``base`` row is left out.
    Confounded features are found and, with ``fold``, folded
    (:mod:`~t2i_bench.analysis.confounding`). Per target, rows with a NaN target are
    dropped; the cross-validated R² pools out-of-fold predictions from ``cv_folds`` folds
    grouped by configuration. Raises BenchError when a target has fewer than
    ``2 * cv_folds`` configurations or fewer than 8 checkpoints (with ``skip_insufficient``,
    such targets are skipped with a warning, and the error comes only when none is left).
    Warnings are prefixed with ``[group]``; targets with r2_cv <= ``r2_threshold`` get one.
    """
    if cv_folds < 2:
        raise ValueError("cv_folds must be at least 2")
    rows = model_rows(table)
    targets = list(dict.fromkeys(targets))
    for target in targets:
        if target not in rows.columns:
            raise BenchError(f"target {target!r} is not a column of the table")
    built = build_features(rows, features, categorical)
    folded = fold_confounded(built, fold=fold)
    matrix = folded.matrix
    groups = config_groups(rows, matrix)
    notes = [*matrix.warnings, *(c.message() for c in folded.confounds)]
    selections = {}
    shortfalls = []
    for target in targets:
        keep = rows[target].notna().to_numpy()
        n_rows, n_configs = int(keep.sum()), int(np.unique(groups[keep]).size)
        if n_configs < 2 * cv_folds or n_rows < MIN_ROWS:
            message = (
                f"target {target!r}: {cv_folds}-fold grouped cross-validation needs at least "
                f"{2 * cv_folds} configurations and {MIN_ROWS} checkpoints with a value; "
                f"there are {n_configs} configurations ({n_rows} checkpoints)"
            )
            if not skip_insufficient:
                raise BenchError(_labelled(group, message))
            shortfalls.append(message)
            continue
        if rows[target][keep].nunique() < 2:
            notes.append(f"target {target!r} is constant over the checkpoints; skipped")
            continue
        selections[target] = keep
    notes.extend(f"{m}; skipped" for m in shortfalls)
    if not selections:
        reason = shortfalls[0] if shortfalls else "no target varies over the checkpoints"
        raise BenchError(_labelled(group, reason))
    settings = dict(
        iterations=iterations,
        depth=depth,
        learning_rate=learning_rate,
        random_seed=seed,
        thread_count=thread_count,
        one_hot_max_size=ONE_HOT_MAX_SIZE,
    )
    fits = {
        target: _fit_target(rows, target, keep, matrix, groups, cv_folds, seed, settings, group)
        for target, keep in selections.items()
    }
    result = ImportanceResult(
        fits=fits,
        features=matrix.names,
        categorical=matrix.categorical,
        cv_folds=cv_folds,
        seed=seed,
        warnings=[_labelled(group, n) for n in notes],
        group=group,
        confounds=folded.confounds,
        aliases=folded.aliases,
        r2_threshold=r2_threshold,
        n_boot=n_boot,
    )
    result.warnings.extend(result.low_fit_warnings)
    return result


def _labelled(group: str, message: str) -> str:
    return f"[{group}] {message}"


def _fit_target(
    rows: pd.DataFrame,
    target: str,
    keep: np.ndarray,
    matrix: FeatureMatrix,
    groups: np.ndarray,
    cv_folds: int,
    seed: int,
    settings: dict,
    group: str,
) -> TargetFit:
    x = matrix.frame[keep].reset_index(drop=True)
    y = rows[target].to_numpy(dtype=np.float64)[keep]
    folds = grouped_folds(groups[keep], cv_folds, seed)
    cv_prediction = np.empty_like(y)
    fold_shap = []
    for fold in range(cv_folds):
        test = folds == fold
        model = _train(x[~test], y[~test], matrix.categorical, settings)
        if model is None:
            cv_prediction[test] = y[~test].mean()
            fold_shap.append(np.zeros(x.shape, dtype=np.float64))
            continue
        cv_prediction[test] = model.predict(x[test])
        fold_shap.append(_shap(model, x, matrix.categorical, "ShapValues")[:, :-1])
    model = _train(x, y, matrix.categorical, settings)
    shap = _shap(model, x, matrix.categorical, "ShapValues")
    interactions = _shap(model, x, matrix.categorical, "ShapInteractionValues")[:, :-1, :-1]
    checkpoints = (
        rows["checkpoint"].astype(str).to_numpy()[keep].tolist()
        if "checkpoint" in rows.columns
        else [str(i) for i in rows.index[keep]]
    )
    return TargetFit(
        target=target,
        checkpoints=checkpoints,
        features=x,
        categorical=list(matrix.categorical),
        y=y,
        shap_values=np.ascontiguousarray(shap[:, :-1], dtype=np.float64),
        base_value=float(shap[0, -1]),
        r2_train=_r2(y, model.predict(x)),
        r2_cv=_r2(y, cv_prediction),
        n_configs=int(np.unique(groups[keep]).size),
        cv_prediction=cv_prediction,
        groups=np.asarray(groups[keep]),
        fold_shap=fold_shap,
        interactions=np.asarray(interactions, dtype=np.float64),
        group=group,
    )


def _train(x: pd.DataFrame, y: np.ndarray, categorical: list[str], settings: dict):
    """A fitted CatBoostRegressor, or None when the training target is constant.

    ``allow_writing_files=False``: CatBoost writes nothing (no ``catboost_info/`` in the cwd).
    """
    from catboost import CatBoostRegressor

    if np.ptp(y) == 0:
        return None
    model = CatBoostRegressor(
        **settings,
        cat_features=[x.columns.get_loc(c) for c in categorical],
        verbose=False,
        allow_writing_files=False,
    )
    model.fit(x, y)
    return model


def _shap(model, x: pd.DataFrame, categorical: list[str], kind: str) -> np.ndarray:
    """CatBoost's exact TreeSHAP values (``ShapValues``: last column the expected value) or
    interaction values (``ShapInteractionValues``: last row and column the bias)."""
    from catboost import Pool

    pool = Pool(x, cat_features=[x.columns.get_loc(c) for c in categorical])
    return np.asarray(model.get_feature_importance(pool, type=kind), dtype=np.float64)


def _r2(y: np.ndarray, prediction: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return np.nan
    return 1.0 - float(((y - prediction) ** 2).sum()) / total

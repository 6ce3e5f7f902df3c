"""Which hyperparameters drive each metric: CatBoost per target, SHAP, grouped-CV R²."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from t2i_bench.analysis.features import (
    FeatureMatrix,
    build_features,
    config_groups,
    grouped_folds,
    model_rows,
)
from t2i_bench.analysis.io import write_table
from t2i_bench.errors import BenchError

#: Fewest checkpoints with a target value for a fit.
MIN_ROWS = 8
#: CatBoost settings; small data, so shallow trees and modest iterations.
DEFAULT_ITERATIONS = 300
DEFAULT_DEPTH = 4
DEFAULT_LEARNING_RATE = 0.05


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

    @property
    def n_rows(self) -> int:
        """Checkpoints the model was fitted on."""
        return len(self.y)

    def mean_abs_shap(self) -> pd.Series:
        """Mean |SHAP| per feature, largest first (ties by name)."""
        values = pd.Series(np.abs(self.shap_values).mean(axis=0), index=self.features.columns)
        return values.sort_index().sort_values(ascending=False, kind="mergesort")

    def effect_correlation(self, feature: str) -> float:
        """Pearson correlation of a numeric feature's value with its SHAP value (NaN if none)."""
        if feature in self.categorical:
            return np.nan
        x = self.features[feature].to_numpy(dtype=np.float64)
        s = self.shap_values[:, self.features.columns.get_loc(feature)]
        ok = ~np.isnan(x)
        if ok.sum() < 2 or np.ptp(x[ok]) == 0 or np.ptp(s[ok]) == 0:
            return np.nan
        return float(np.corrcoef(x[ok], s[ok])[0, 1])


@dataclass(frozen=True)
class ImportanceResult:
    """Per-target fits plus the settings used; tables via :attr:`importance` and :attr:`r2`."""

    fits: dict[str, TargetFit]
    features: list[str]
    categorical: list[str]
    cv_folds: int
    seed: int
    warnings: list[str] = field(default_factory=list)

    @property
    def importance(self) -> pd.DataFrame:
        """target, feature, mean_abs_shap, rank (1 = largest), sign (+1/-1/0, NaN for
        categorical features), corr (feature value vs SHAP value)."""
        rows = []
        for target, fit in self.fits.items():
            for rank, (feature, value) in enumerate(fit.mean_abs_shap().items(), start=1):
                corr = fit.effect_correlation(feature)
                sign = np.nan if feature in fit.categorical else float(np.sign(np.nan_to_num(corr)))
                rows.append((target, feature, float(value), rank, sign, corr))
        columns = ["target", "feature", "mean_abs_shap", "rank", "sign", "corr"]
        return pd.DataFrame(rows, columns=columns)

    @property
    def r2(self) -> pd.DataFrame:
        """target, r2_train, r2_cv, n_rows, n_configs, cv_folds."""
        rows = [
            (t, f.r2_train, f.r2_cv, f.n_rows, f.n_configs, self.cv_folds)
            for t, f in self.fits.items()
        ]
        columns = ["target", "r2_train", "r2_cv", "n_rows", "n_configs", "cv_folds"]
        return pd.DataFrame(rows, columns=columns)


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
) -> ImportanceResult:
    """Fit one CatBoost regressor per target on hyperparameter features and explain it.

    ``table`` has one row per checkpoint (see
    :func:`~t2i_bench.analysis.aggregate.checkpoint_table`); the ``base`` row is left out.
    Per target, rows with a NaN target are dropped; the cross-validated R² pools
    out-of-fold predictions from ``cv_folds`` folds grouped by configuration (no
    configuration on both sides of a split). Raises BenchError when a target has fewer than
    ``2 * cv_folds`` configurations or fewer than 8 checkpoints (with ``skip_insufficient``,
    such targets are skipped with a warning, and the error comes only when none is left).
    """
    if cv_folds < 2:
        raise ValueError("cv_folds must be at least 2")
    rows = model_rows(table)
    targets = list(dict.fromkeys(targets))
    for target in targets:
        if target not in rows.columns:
            raise BenchError(f"target {target!r} is not a column of the table")
    matrix = build_features(rows, features, categorical)
    groups = config_groups(rows, matrix)
    notes = list(matrix.warnings)
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
                raise BenchError(message)
            shortfalls.append(message)
            continue
        if rows[target][keep].nunique() < 2:
            notes.append(f"target {target!r} is constant over the checkpoints; skipped")
            continue
        selections[target] = keep
    notes.extend(f"{m}; skipped" for m in shortfalls)
    if not selections:
        raise BenchError(shortfalls[0] if shortfalls else "no target varies over the checkpoints")
    settings = dict(
        iterations=iterations,
        depth=depth,
        learning_rate=learning_rate,
        random_seed=seed,
        thread_count=thread_count,
    )
    fits = {
        target: _fit_target(rows, target, keep, matrix, groups, cv_folds, seed, settings)
        for target, keep in selections.items()
    }
    return ImportanceResult(
        fits=fits,
        features=matrix.names,
        categorical=matrix.categorical,
        cv_folds=cv_folds,
        seed=seed,
        warnings=notes,
    )


def write_importance(result: ImportanceResult, out_dir: str | Path) -> list[Path]:
    """Write ``importance.csv``, ``r2.csv``, the SHAP plots and their numbers; return paths.

    Plots (PNG) each with a CSV of the numbers beside them: ``shap_summary`` (mean |SHAP|
    share per feature × target), ``beeswarm_<target>`` and
    ``dependence_<target>_<feature>`` for the top two features. ``plots.csv`` lists them.
    """
    from t2i_bench.analysis import importance_plots as plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_table(result.importance, out / "importance.csv"),
        write_table(result.r2, out / "r2.csv"),
    ]
    manifest = [("summary", "", "", *plots.summary_plot(result, out / "shap_summary"))]
    slugs = _unique_slugs(result.fits)
    for target, fit in result.fits.items():
        stem = out / f"beeswarm_{slugs[target]}"
        manifest.append(("beeswarm", target, "", *plots.beeswarm_plot(fit, stem, seed=result.seed)))
        for feature in fit.mean_abs_shap().index[:2]:
            stem = out / f"dependence_{slugs[target]}_{_slug(feature)}"
            manifest.append(
                ("dependence", target, feature, *plots.dependence_plot(fit, feature, stem))
            )
    index = pd.DataFrame(manifest, columns=["kind", "target", "feature", "png", "csv"])
    for col in ("png", "csv"):
        written.extend(out / name for name in index[col])
    written.append(write_table(index, out / "plots.csv"))
    return written


def _fit_target(
    rows: pd.DataFrame,
    target: str,
    keep: np.ndarray,
    matrix: FeatureMatrix,
    groups: np.ndarray,
    cv_folds: int,
    seed: int,
    settings: dict,
) -> TargetFit:
    shap = import_shap()
    x = matrix.frame[keep].reset_index(drop=True)
    y = rows[target].to_numpy(dtype=np.float64)[keep]
    folds = grouped_folds(groups[keep], cv_folds, seed)
    cv_prediction = np.empty_like(y)
    for fold in range(cv_folds):
        test = folds == fold
        model = _train(x[~test], y[~test], matrix.categorical, settings)
        cv_prediction[test] = model.predict(x[test]) if model is not None else y[~test].mean()
    model = _train(x, y, matrix.categorical, settings)
    explanation = shap.TreeExplainer(model)(x)
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
        shap_values=np.asarray(explanation.values, dtype=np.float64),
        base_value=float(np.ravel(explanation.base_values)[0]),
        r2_train=_r2(y, model.predict(x)),
        r2_cv=_r2(y, cv_prediction),
        n_configs=int(np.unique(groups[keep]).size),
        cv_prediction=cv_prediction,
    )


def import_shap() -> ModuleType:
    """``import shap`` without the PendingDeprecationWarnings its colour maps raise on import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
    return shap


def _train(x: pd.DataFrame, y: np.ndarray, categorical: list[str], settings: dict):
    """A fitted CatBoostRegressor, or None when the training target is constant."""
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


def _r2(y: np.ndarray, prediction: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return np.nan
    return 1.0 - float(((y - prediction) ** 2).sum()) / total


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "target"


def _unique_slugs(names: Sequence[str]) -> dict[str, str]:
    slugs: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        slug, n = _slug(name), 2
        while slug in used:
            slug, n = f"{_slug(name)}-{n}", n + 1
        used.add(slug)
        slugs[name] = slug
    return slugs

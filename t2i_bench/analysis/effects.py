"""Read SHAP values as effects: direction and shape of a numeric feature, per-level effects
of a categorical one with a bootstrap interval, and the strongest interaction pairs.

The rules are documented in docs/analysis.md ("Reading the effects").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

#: A numeric feature whose mean SHAP moves by less than this fraction of the target's
#: standard deviation over its values is "flat".
FLAT_FRACTION = 0.05
#: Steps against the trend smaller than this fraction of the spread of the mean SHAP over
#: the feature's values do not break "increasing" / "decreasing".
MONOTONE_TOLERANCE = 0.1
#: Numeric features with more distinct values are binned into this many quantile bins.
MAX_SHAPE_BINS = 10


def numeric_effect(values: np.ndarray, shap: np.ndarray) -> float:
    """Spearman ρ between a feature's values and its SHAP values (−1..1; NaN if undefined).

    +1: the larger the feature, the higher the prediction, monotonically.
    """
    x, s = _present(values, shap)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(s) == 0:
        return float("nan")
    return float(spearmanr(x, s).statistic)


def value_means(values: np.ndarray, shap: np.ndarray) -> pd.Series:
    """Mean SHAP per distinct feature value (or per quantile bin, indexed by its median)."""
    x, s = _present(values, shap)
    frame = pd.DataFrame({"x": x, "s": s})
    if frame["x"].nunique() > MAX_SHAPE_BINS:
        bins = pd.qcut(frame["x"].rank(method="first"), MAX_SHAPE_BINS, labels=False)
        grouped = frame.groupby(bins, sort=True)
        return pd.Series(grouped["s"].mean().to_numpy(), index=grouped["x"].median().to_numpy())
    return frame.groupby("x", sort=True)["s"].mean()


def effect_shape(
    values: np.ndarray,
    shap: np.ndarray,
    target_sd: float,
    display: Callable[[float], float] = float,
) -> tuple[str, float]:
    """``(shape, at)``: increasing, decreasing, peaked at V, dipped at V, non-monotone, flat.

    From the mean SHAP per feature value m₁…m_k (values sorted): *flat* when
    max − min < FLAT_FRACTION × ``target_sd``; *increasing* / *decreasing* when no step goes
    against the trend by more than MONOTONE_TOLERANCE × (max − min); otherwise *peaked at V*
    when the largest mean is at an inner value V, else *dipped at V* when the smallest is,
    else *non-monotone*. ``at`` is V (``display(V)``: e.g. the learning rate for
    ``log10_lr``) or NaN.
    """
    means = value_means(values, shap)
    if means.size < 2:
        return "flat", float("nan")
    m = means.to_numpy()
    spread = float(m.max() - m.min())
    if not np.isfinite(spread) or spread < FLAT_FRACTION * max(target_sd, 0.0) or spread == 0:
        return "flat", float("nan")
    steps = np.diff(m)
    tolerance = MONOTONE_TOLERANCE * spread
    if (steps >= -tolerance).all():
        return "increasing", float("nan")
    if (steps <= tolerance).all():
        return "decreasing", float("nan")
    top, bottom = int(np.argmax(m)), int(np.argmin(m))
    inner = range(1, m.size - 1)
    peak = m[top] - max(m[0], m[-1]) if top in inner else -np.inf
    dip = min(m[0], m[-1]) - m[bottom] if bottom in inner else -np.inf
    if peak == dip == -np.inf:
        return "non-monotone", float("nan")
    at = display(float(means.index[top if peak >= dip else bottom]))
    return f"{'peaked' if peak >= dip else 'dipped'} at {at:.4g}", at


def level_effects(
    levels: np.ndarray,
    shap: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int,
    ci: float,
    seed: Sequence[int] | int,
) -> pd.DataFrame:
    """Mean SHAP per level of a categorical feature, with a cluster-bootstrap interval.

    Columns: ``level, effect, ci_low, ci_high, n, n_configs``. The interval resamples the
    level's configurations (``groups``: all seeds and epochs of one configuration together)
    with replacement, ``n_boot`` times, and takes the percentile interval of the resampled
    means; the model is held fixed. A level with one configuration has no interval (NaN).
    """
    rng = np.random.default_rng(seed)
    rows = []
    alpha = (1.0 - ci) / 2.0
    for level in sorted(pd.unique(levels)):
        at = levels == level
        s, g = shap[at], groups[at]
        unique, index = np.unique(g, return_inverse=True)
        sums = np.bincount(index, weights=s)
        counts = np.bincount(index).astype(np.float64)
        low = high = float("nan")
        if unique.size > 1:
            draw = rng.integers(0, unique.size, size=(n_boot, unique.size))
            means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
            low, high = (float(q) for q in np.quantile(means, [alpha, 1.0 - alpha]))
        rows.append((level, float(s.mean()), low, high, int(at.sum()), int(unique.size)))
    return pd.DataFrame(rows, columns=["level", "effect", "ci_low", "ci_high", "n", "n_configs"])


def sign_agreement(effect: float, fold_effects: Sequence[float]) -> float:
    """Share of the cross-validation models whose effect has the same sign as ``effect``."""
    folds = np.asarray([e for e in fold_effects if np.isfinite(e)], dtype=np.float64)
    if folds.size == 0 or not np.isfinite(effect) or effect == 0:
        return float("nan")
    return float((np.sign(folds) == np.sign(effect)).mean())


def interaction_pairs(interactions: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Mean |SHAP interaction| per feature pair, strongest first.

    ``interactions`` is CatBoost's ShapInteractionValues without the bias row/column
    (objects × features × features, symmetric, each pair's interaction split in half
    between (a, b) and (b, a)); the pair's strength is mean |φ_ab + φ_ba|, in target units.
    Columns: ``feature_a, feature_b, interaction``.
    """
    rows = []
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            value = float(np.abs(interactions[:, i, j] + interactions[:, j, i]).mean())
            rows.append((a, names[j], value))
    frame = pd.DataFrame(rows, columns=["feature_a", "feature_b", "interaction"])
    return frame.sort_values("interaction", ascending=False, kind="mergesort").reset_index(
        drop=True
    )


def _present(values: np.ndarray, shap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(x)
    return x[ok], np.asarray(shap, dtype=np.float64)[ok]

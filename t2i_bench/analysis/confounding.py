"""Confounded features: find hyperparameters the sweep cannot tell apart, and fold them.

Two features are confounded when the sweep never varies one without the other, so a model
can give the credit to either (a LoKr ``dim`` of 10000 that occurs only with
``algo=lokr`` ranks high for lokr's effect). The rules (docs/analysis.md):

* **nested** — a level of a categorical feature A in which feature B is constant at a value
  B takes at no other level of A (``algo=lokr`` always has ``dim=10000``, no other algorithm
  has 10000); or B is missing exactly at some levels of A (``factor`` only for lokr).
  Folded: A and B are replaced by the combined categorical feature ``A:B`` (levels such as
  ``lokr:10000``), so the effect is reported for what the sweep did vary together.
* **correlated** — two numeric features with the same missing rows and Spearman |ρ| = 1
  (``alpha`` always ``dim / 2``; ``step`` = ``epoch`` × steps per epoch). Folded: the later
  feature is dropped and named as an alias of the earlier one.

Folding repeats until no rule applies. With ``fold=False`` the findings are only reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from t2i_bench.analysis.features import LOG_LR, MISSING_CATEGORY, FeatureMatrix

#: Separator of a combined feature's name and levels: ``algo:dim``, ``lokr:10000``.
COMBINED_SEPARATOR = ":"


@dataclass(frozen=True)
class Confound:
    """One finding: ``feature`` is confounded with ``other``."""

    feature: str
    other: str
    kind: str  # "nested" or "correlated"
    detail: str
    action: str = "flagged"

    def message(self) -> str:
        """One line for warnings.txt."""
        return f"feature {self.other!r} is confounded with {self.feature!r}: {self.detail}; " + (
            self.action
        )


@dataclass(frozen=True)
class Folded:
    """Features after folding, the findings, and the aliases of each kept feature."""

    matrix: FeatureMatrix
    confounds: list[Confound]
    aliases: dict[str, list[str]] = field(default_factory=dict)


def fold_confounded(matrix: FeatureMatrix, fold: bool = True) -> Folded:
    """Find confounded features in ``matrix`` and, with ``fold``, fold them (module rules)."""
    frame, categorical = matrix.frame.copy(), list(matrix.categorical)
    findings: list[Confound] = []
    aliases: dict[str, list[str]] = {}
    while True:
        found = _first_confound(frame, categorical, skip=findings if not fold else ())
        if found is None:
            break
        if not fold:
            findings.append(found)
            continue
        if found.kind == "correlated":
            frame = frame.drop(columns=found.other)
            aliases.setdefault(found.feature, []).extend(
                [found.other, *aliases.pop(found.other, [])]
            )
            findings.append(replace(found, action=f"dropped, an alias of {found.feature!r}"))
            continue
        combined = f"{found.feature}{COMBINED_SEPARATOR}{_plain_name(found.other)}"
        position = list(frame.columns).index(found.feature)
        values = (
            _as_text(frame[found.feature])
            + COMBINED_SEPARATOR
            + _as_text(_plain_values(frame[found.other]))
        )
        frame = frame.drop(columns=[found.feature, found.other])
        frame.insert(min(position, frame.shape[1]), combined, values.astype("object"))
        categorical = [c for c in categorical if c not in (found.feature, found.other)]
        categorical.append(combined)
        merged = aliases.pop(found.feature, []) + aliases.pop(found.other, [])
        if merged:
            aliases[combined] = merged
        findings.append(replace(found, action=f"folded into the feature {combined!r}"))
    categorical = [c for c in frame.columns if c in categorical]
    folded = FeatureMatrix(frame=frame, categorical=categorical, warnings=list(matrix.warnings))
    return Folded(matrix=folded, confounds=findings, aliases=aliases)


def _first_confound(
    frame: pd.DataFrame, categorical: list[str], skip: object = ()
) -> Confound | None:
    """The first finding in column order that is not in ``skip``."""
    seen = {(c.feature, c.other) for c in skip}  # type: ignore[attr-defined]
    columns = list(frame.columns)
    for a in columns:
        if a not in categorical:
            continue
        for b in columns:
            if b == a or (a, b) in seen or (b, a) in seen:
                continue
            detail = _nested(frame[a], frame[b])
            if detail:
                return Confound(a, b, "nested", detail)
    numeric = [c for c in columns if c not in categorical]
    for i, a in enumerate(numeric):
        for b in numeric[i + 1 :]:
            if (a, b) in seen:
                continue
            rho = _perfect_rank_correlation(frame[a], frame[b])
            if rho is not None:
                return Confound(a, b, "correlated", f"Spearman {rho:+.2f} over every checkpoint")
    return None


def _nested(a: pd.Series, b: pd.Series) -> str:
    """Why B is aliased with some levels of categorical A, or '' when it is not."""
    key, name = _as_text(_plain_values(b)), _plain_name(str(b.name))
    pairs = pd.DataFrame({"a": a.astype(str), "b": key})
    per_level = pairs.groupby("a", sort=True)["b"].agg(lambda s: frozenset(s))
    if len(per_level) < 2:
        return ""
    reasons = []
    missing_levels = [lvl for lvl, values in per_level.items() if values == {MISSING_CATEGORY}]
    for level, values in per_level.items():
        if len(values) != 1 or values == {MISSING_CATEGORY}:
            continue
        (value,) = values
        others = per_level.drop(index=level)
        if not any(value in v for v in others):
            reasons.append(f"{name}={value} only with {a.name}={level}")
    if missing_levels and len(missing_levels) < len(per_level):
        has_value = per_level.drop(index=missing_levels)
        if all(MISSING_CATEGORY not in v for v in has_value):
            shown = ", ".join(f"{a.name}={lvl}" for lvl in missing_levels)
            reasons.append(f"{name} is missing exactly at {shown}")
    return "; ".join(reasons)


def _perfect_rank_correlation(a: pd.Series, b: pd.Series) -> float | None:
    """Spearman ρ when it is ±1 and the two have the same missing rows, else None."""
    x, y = a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
    present = ~np.isnan(x)
    if not np.array_equal(present, ~np.isnan(y)) or present.sum() < 3:
        return None
    x, y = x[present], y[present]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    rho = float(spearmanr(x, y).statistic)
    return rho if abs(rho) > 1.0 - 1e-9 else None


def _plain_name(name: str) -> str:
    return "lr" if name == LOG_LR else name


def _plain_values(column: pd.Series) -> pd.Series:
    """``log10_lr`` back to the learning rate, so a combined level reads ``lora:0.0001``."""
    return 10.0**column if column.name == LOG_LR else column


def _as_text(column: pd.Series) -> pd.Series:
    """Values as level text: numbers ``%g``, missing as ``(missing)``."""

    def text(value: object) -> str:
        if isinstance(value, float):
            return MISSING_CATEGORY if np.isnan(value) else f"{value:g}"
        return MISSING_CATEGORY if pd.isna(value) else str(value)

    return column.map(text).astype("object")

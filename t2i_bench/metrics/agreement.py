"""Which metrics agree, which are redundant, which are in tension?

Spearman rank correlation between every pair of metrics across checkpoints, per prompt
type: each metric's value per checkpoint is its mean over images and concepts for that
prompt type. ``rho`` is the raw correlation; ``agreement`` orients it by each metric's
direction (``rho`` · sign_a · sign_b, sign = +1 when higher is better), so a positive value
means both metrics rank the checkpoints the same way from better to worse.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

MIN_CHECKPOINTS = 3  # fewer ranks say nothing


def checkpoint_means(scores: pd.DataFrame) -> pd.DataFrame:
    """(prompt_type, checkpoint) × metric table of mean values from rows with columns metric,
    checkpoint, prompt_type, value (per image or per set, any number of concepts)."""
    need = {"metric", "checkpoint", "prompt_type", "value"}
    if missing := need - set(scores.columns):
        raise ValueError(f"agreement: missing columns {sorted(missing)}")
    clean = scores[np.isfinite(scores["value"].astype(float))]
    return clean.pivot_table(
        index=["prompt_type", "checkpoint"], columns="metric", values="value", aggfunc="mean"
    )


def agreement_matrix(
    scores: pd.DataFrame, higher_is_better: Mapping[str, bool] | None = None
) -> pd.DataFrame:
    """Long table: prompt_type, metric_a, metric_b, rho, agreement, p_value, n_checkpoints.

    Pairs are computed on the checkpoints where both metrics have a value; pairs with fewer
    than :data:`MIN_CHECKPOINTS` such checkpoints, or a constant metric, get NaN.
    """
    from scipy.stats import spearmanr  # scipy.stats: ~0.4 s to import; only when computing

    table = checkpoint_means(scores)
    direction = dict(higher_is_better or {})
    rows = []
    for ptype in sorted(table.index.get_level_values("prompt_type").unique()):
        part = table.xs(ptype, level="prompt_type").dropna(axis=1, how="all")
        for a, b in combinations(sorted(part.columns), 2):
            both = part[[a, b]].dropna()
            rho = p_value = float("nan")
            if len(both) >= MIN_CHECKPOINTS and both[a].nunique() > 1 and both[b].nunique() > 1:
                result = spearmanr(both[a], both[b])
                rho, p_value = float(result.statistic), float(result.pvalue)
            sign = (1 if direction.get(a, True) else -1) * (1 if direction.get(b, True) else -1)
            rows.append(
                {
                    "prompt_type": ptype,
                    "metric_a": a,
                    "metric_b": b,
                    "rho": rho,
                    "agreement": sign * rho,
                    "p_value": p_value,
                    "n_checkpoints": len(both),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "prompt_type",
            "metric_a",
            "metric_b",
            "rho",
            "agreement",
            "p_value",
            "n_checkpoints",
        ],
    )


def square(agreement: pd.DataFrame, prompt_type: str, column: str = "agreement") -> pd.DataFrame:
    """The symmetric metric × metric matrix of one prompt type (1 on the diagonal)."""
    part = agreement[agreement["prompt_type"] == prompt_type]
    names = sorted(set(part["metric_a"]) | set(part["metric_b"]))
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for a, b, v in zip(part["metric_a"], part["metric_b"], part[column], strict=True):
        out.loc[a, b] = out.loc[b, a] = v
    return out


def write_agreement_csv(agreement: pd.DataFrame, path: Path) -> Path:
    """Write :func:`agreement_matrix`'s output (atomically: temp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    agreement.to_csv(tmp, index=False, float_format="%.10g")
    tmp.replace(path)
    return path

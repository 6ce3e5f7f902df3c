"""`leaderboard.csv`: a row per checkpoint, hyperparameters, a column per metric × prompt type."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from t2i_bench.store import atomic_write_bytes


def leaderboard(scores: pd.DataFrame, checkpoints: pd.DataFrame) -> pd.DataFrame:
    """Mean per (checkpoint, metric, prompt type), averaged over concepts."""
    per_concept = (
        scores.dropna(subset=["value"])
        .groupby(["checkpoint", "concept", "metric", "prompt_type"], sort=False)["value"]
        .mean()
    )
    table = per_concept.groupby(["checkpoint", "metric", "prompt_type"], sort=False).mean()
    wide = table.unstack(["metric", "prompt_type"])
    wide.columns = [f"{m}.{p}" for m, p in wide.columns]
    wide = wide[sorted(wide.columns)]
    return checkpoints.merge(wide, left_on="checkpoint", right_index=True, how="left")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Deterministic CSV: 6 significant digits, fixed line endings, atomic write."""
    text = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    atomic_write_bytes(path, text.encode("utf-8"))

"""One call from a long metrics table and a configs table to every analysis file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from t2i_bench.analysis.aggregate import (
    across_seeds,
    checkpoint_table,
    leaderboard_table,
    metric_columns,
    summarize,
)
from t2i_bench.analysis.importance import (
    DEFAULT_ITERATIONS,
    ImportanceResult,
    fit_importance,
    write_importance,
)
from t2i_bench.analysis.io import write_table
from t2i_bench.analysis.ranking import rank_scale


@dataclass
class AnalysisOutputs:
    """What :func:`run_analysis` computed and wrote."""

    summary: pd.DataFrame
    leaderboard: pd.DataFrame
    importance: ImportanceResult | None
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run_analysis(
    metrics: pd.DataFrame,
    configs: pd.DataFrame,
    out_dir: str | Path,
    higher_is_better: Mapping[str, bool],
    *,
    targets: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    seed: int = 0,
    cv_folds: int = 5,
    n_boot: int = 1000,
    on_missing: str = "error",
    importance: bool = True,
    iterations: int = DEFAULT_ITERATIONS,
) -> AnalysisOutputs:
    """Summaries, leaderboard, seed statistics, rank scores and SHAP importance in ``out_dir``.

    Writes ``summary.csv``, ``leaderboard.csv``, ``across_seeds.csv``, ``rank_scores.csv``,
    ``checkpoints.csv`` (unrounded per-checkpoint means: the importance input) and, with
    ``importance``, the files of :func:`~t2i_bench.analysis.importance.write_importance`
    plus ``warnings.txt``. ``targets`` defaults to every ``{metric}.{prompt_type}`` column;
    default targets with too few configurations are skipped with a warning, named ones
    raise BenchError.
    """
    out = Path(out_dir)
    warnings: list[str] = []
    summary = summarize(metrics, n_boot=n_boot, seed=seed)
    leaderboard = leaderboard_table(summary, configs, higher_is_better, on_missing=on_missing)
    warnings.extend(leaderboard.attrs.get("warnings", []))
    table = checkpoint_table(summary, configs, on_missing="drop")
    kept = summary[summary["checkpoint"].isin(table["checkpoint"])]
    files = [
        write_table(summary, out / "summary.csv"),
        write_table(leaderboard, out / "leaderboard.csv"),
        write_table(across_seeds(kept, configs), out / "across_seeds.csv"),
        write_table(rank_scale(summary, higher_is_better), out / "rank_scores.csv"),
        write_table(table, out / "checkpoints.csv"),
    ]
    result = None
    if importance:
        names = list(targets) if targets is not None else metric_columns(summary)
        result = fit_importance(
            table,
            names,
            features,
            categorical,
            seed=seed,
            cv_folds=cv_folds,
            skip_insufficient=targets is None,
            iterations=iterations,
        )
        warnings.extend(result.warnings)
        files.extend(write_importance(result, out))
    warnings_path = out / "warnings.txt"
    warnings_path.write_text("".join(f"{w}\n" for w in warnings), encoding="utf-8")
    files.append(warnings_path)
    return AnalysisOutputs(summary, leaderboard, result, files, warnings)

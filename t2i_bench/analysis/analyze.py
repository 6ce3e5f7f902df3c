"""One call from a long metrics table and a configs table to every analysis file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from t2i_bench.analysis.aggregate import (
    across_seeds,
    leaderboard_table,
    metric_columns,
    summarize,
)
from t2i_bench.analysis.curves import curves_plot, metric_of, training_curves
from t2i_bench.analysis.groups import (
    NORMALISATIONS,
    POOLED,
    analysis_groups,
    check_by,
    select_group,
    target_table,
)
from t2i_bench.analysis.importance import (
    DEFAULT_ITERATIONS,
    R2_CV_THRESHOLD,
    ImportanceResult,
    fit_importance,
)
from t2i_bench.analysis.importance_files import (
    PLOT_INDEX_COLUMNS,
    importance_files,
    unique_slugs,
)
from t2i_bench.analysis.io import BASE_CHECKPOINT, prepare_configs, write_table
from t2i_bench.analysis.ranking import rank_scale
from t2i_bench.analysis.where import describe_rows, evaluate_where
from t2i_bench.errors import BenchError


@dataclass
class AnalysisOutputs:
    """What :func:`run_analysis` computed and wrote.

    ``importance`` is the pooled group's result, ``results`` every group's by label;
    ``curves`` the training curves of every group (:func:`training_curves`);
    ``fit_warnings`` the lines saying a fit does not generalise (also in ``warnings``).
    """

    summary: pd.DataFrame
    leaderboard: pd.DataFrame
    importance: ImportanceResult | None
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    results: dict[str, ImportanceResult] = field(default_factory=dict)
    curves: pd.DataFrame | None = None
    fit_warnings: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


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
    by: Sequence[str] = (),
    where: str | None = None,
    normalise: str = "raw",
    fold_confounded: bool = True,
    r2_cv_threshold: float | None = None,
    curves: bool = True,
    plots: bool = True,
) -> AnalysisOutputs:
    """Summaries, leaderboard, seed statistics, rank scores, SHAP importance and training
    curves in ``out_dir`` (file list in docs/analysis.md).

    The summaries and the leaderboard cover every checkpoint. The hyperparameter analysis
    (``checkpoints.csv``, the importance files, the curves) covers the checkpoints
    ``where`` keeps, pooled (group ``all``) and per value of each ``by`` column, on
    ``normalise`` = ``raw`` means or ``rank`` scores. Checkpoints missing from ``configs``
    raise BenchError (``on_missing="error"``) or are dropped and listed in
    ``unmatched.csv`` (``"drop"``). Default targets with too few configurations are skipped
    with a warning; named ones raise BenchError for the pooled group.
    """
    out = Path(out_dir)
    if on_missing not in ("error", "drop"):
        raise ValueError(f"on_missing must be 'error' or 'drop', not {on_missing!r}")
    prepared = prepare_configs(configs)
    keep = check_options(prepared, by=by, where=where, normalise=normalise)
    warnings: list[str] = []
    files: list[Path] = []
    metrics, unmatched = _drop_unmatched(metrics, prepared, on_missing)
    if unmatched:
        files.append(write_table(pd.DataFrame({"checkpoint": unmatched}), out / "unmatched.csv"))
        warnings.append(
            f"{len(unmatched)} checkpoint(s) of the metrics table are missing from the configs "
            f"table and were dropped: {describe_rows(unmatched)} (all listed in unmatched.csv)"
        )
    summary = summarize(metrics, n_boot=n_boot, seed=seed)
    leaderboard = leaderboard_table(summary, configs, higher_is_better)
    warnings.extend(leaderboard.attrs.get("warnings", []))
    files += [
        write_table(summary, out / "summary.csv"),
        write_table(leaderboard, out / "leaderboard.csv"),
        write_table(across_seeds(summary, configs), out / "across_seeds.csv"),
        write_table(rank_scale(summary, higher_is_better), out / "rank_scores.csv"),
    ]
    analysed, excluded = _apply_where(prepared, keep, where)
    if excluded:
        reason = pd.DataFrame({"checkpoint": excluded, "excluded_by": where})
        files.append(write_table(reason, out / "excluded.csv"))
        warnings.append(
            f"--where {where!r} excluded {len(excluded)} of {len(prepared) - 1} checkpoints "
            f"from the hyperparameter analysis: {describe_rows(excluded)} "
            "(all listed in excluded.csv)"
        )
    chosen = summary[summary["checkpoint"].isin(analysed["checkpoint"])]
    tables = _group_tables(chosen, analysed, by, normalise, higher_is_better)
    stacked = pd.concat([t.assign(group=g) for g, (_, t) in tables.items()], ignore_index=True)
    files.append(write_table(stacked[["group", *stacked.columns[:-1]]], out / "checkpoints.csv"))
    results: dict[str, ImportanceResult] = {}
    index = pd.DataFrame(columns=PLOT_INDEX_COLUMNS)
    if importance:
        fit_settings = dict(
            features=features,
            categorical=categorical,
            seed=seed,
            cv_folds=cv_folds,
            iterations=iterations,
            fold=fold_confounded,
            r2_threshold=R2_CV_THRESHOLD if r2_cv_threshold is None else r2_cv_threshold,
            n_boot=n_boot,
        )
        names = list(targets) if targets is not None else metric_columns(chosen)
        results = _fit_groups(tables, names, targets is not None, fit_settings, warnings)
        written, index = importance_files(list(results.values()), out, plots=plots)
        files.extend(written)
    curve_frame = None
    if curves:
        curve_frame, curve_index, curve_files = _write_curves(
            tables,
            metric_columns(chosen) if targets is None else targets,
            higher_is_better,
            out,
            plots,
        )
        files.extend(curve_files)
        index = pd.concat([index, curve_index], ignore_index=True) if len(index) else curve_index
        if curve_frame.attrs.get("progress") is None:
            warnings.append(
                "no training curves: the configs table has no epoch or step that varies"
            )
        elif curve_frame.empty:
            warnings.append(
                "no training curves: no run (configuration × seed) has checkpoints at two "
                f"values of {curve_frame.attrs['progress']}"
            )
    if plots:
        files.append(write_table(index, out / "plots.csv"))
    warnings_path = out / "warnings.txt"
    warnings_path.write_text("".join(f"{w}\n" for w in warnings), encoding="utf-8")
    files.append(warnings_path)
    fit_warnings = [w for r in results.values() for w in r.low_fit_warnings]
    return AnalysisOutputs(
        summary=summary,
        leaderboard=leaderboard,
        importance=results.get(POOLED),
        files=files,
        warnings=warnings,
        results=results,
        curves=curve_frame,
        fit_warnings=fit_warnings,
        excluded=excluded,
        unmatched=unmatched,
    )


def _group_tables(
    summary: pd.DataFrame,
    configs: pd.DataFrame,
    by: Sequence[str],
    normalise: str,
    higher_is_better: Mapping[str, bool],
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per group label: (raw table for the curves, table the models are fitted on)."""
    tables = {}
    for group in analysis_groups(summary, configs, by):
        part, part_configs = select_group(summary, configs, group)
        raw = target_table(part, part_configs, "raw")
        if normalise == "raw":
            tables[group.label] = (raw, raw)
        else:
            rank = target_table(part, part_configs, normalise, higher_is_better)
            tables[group.label] = (raw, rank)
    return tables


def _fit_groups(
    tables: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    targets: list[str],
    named: bool,
    settings: dict,
    warnings: list[str],
) -> dict[str, ImportanceResult]:
    """:func:`fit_importance` per group; a group that cannot be fitted is a warning.

    The pooled group raises for a named target it cannot fit (or when none can be fitted).
    """
    results: dict[str, ImportanceResult] = {}
    for label, (_, fitted) in tables.items():
        pooled = label == POOLED
        chosen = [t for t in targets if pooled or t in fitted.columns]
        try:
            result = fit_importance(
                fitted, chosen, skip_insufficient=not (named and pooled), group=label, **settings
            )
        except BenchError as exc:
            if pooled:
                raise
            warnings.append(f"{exc}; no importance analysis for this group")
            continue
        results[label] = result
        warnings.extend(result.warnings)
    return results


def check_options(
    configs: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    where: str | None = None,
    normalise: str = "raw",
) -> pd.Series | None:
    """Check the analysis options against a configs table before any work; BenchError
    naming the first problem. Returns the ``where`` mask (None without ``where``)."""
    if normalise not in NORMALISATIONS:
        raise BenchError(f"normalise must be 'raw' or 'rank', not {normalise!r}")
    prepared = prepare_configs(configs)
    check_by(by, prepared)
    if not where:
        return None
    keep = evaluate_where(where, prepared)
    if not (keep & prepared["checkpoint"].ne(BASE_CHECKPOINT)).any():
        raise BenchError(f"--where {where!r} keeps no checkpoint")
    return keep


def _drop_unmatched(
    metrics: pd.DataFrame, configs: pd.DataFrame, on_missing: str
) -> tuple[pd.DataFrame, list[str]]:
    """Metrics without the checkpoints the configs table lacks, and their names."""
    unmatched = sorted(set(metrics["checkpoint"]) - set(configs["checkpoint"]))
    if unmatched and on_missing == "error":
        raise BenchError(
            f"{len(unmatched)} checkpoint(s) of the metrics table are missing from the configs "
            f"table: {describe_rows(unmatched)} (drop them with --on-missing drop, or "
            "on_missing='drop'; to leave checkpoints out on purpose use --where)"
        )
    return metrics[~metrics["checkpoint"].isin(unmatched)], unmatched


def _apply_where(
    configs: pd.DataFrame, keep: pd.Series | None, where: str | None
) -> tuple[pd.DataFrame, list[str]]:
    """The configs rows ``where`` kept (the base row always), and the excluded names."""
    if keep is None:
        return configs, []
    is_base = configs["checkpoint"].eq(BASE_CHECKPOINT)
    kept = configs[keep | is_base]
    return kept, sorted(configs.loc[~keep & ~is_base, "checkpoint"])


def _write_curves(
    tables: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    targets: Sequence[str],
    higher_is_better: Mapping[str, bool],
    out: Path,
    plots: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """``curves_<target>.png/.csv`` (raw values, every group); the curves and index rows."""
    frames = [
        training_curves(raw, targets, higher_is_better, group=label)
        for label, (raw, _) in tables.items()
    ]
    progress = next((f.attrs["progress"] for f in frames if f.attrs.get("progress")), None)
    frames = [f for f in frames if len(f)]
    curves = pd.concat(frames, ignore_index=True) if frames else _empty_curves(progress)
    curves.attrs["progress"] = progress
    rows, files = [], []
    slugs = unique_slugs(list(dict.fromkeys(curves["target"])))
    for target, stem_name in slugs.items():
        stem = out / f"curves_{stem_name}"
        if plots:
            higher = higher_is_better.get(metric_of(target), True)
            png, csv = curves_plot(curves, target, higher, stem)
            rows.append(("curves", "", target, "", png, csv))
            files += [out / png, out / csv]
        else:
            data = curves[curves["target"].eq(target)].reset_index(drop=True)
            files.append(write_table(data, out / f"{stem.name}.csv"))
    return curves, pd.DataFrame(rows, columns=PLOT_INDEX_COLUMNS), files


def _empty_curves(progress: str | None) -> pd.DataFrame:
    """An empty curves table."""
    return training_curves(pd.DataFrame(), [], {}, progress=progress)

"""The report stage: tables, analysis, plots and the HTML report from what the store holds.

``write_report(run)`` writes into the run dir ``leaderboard.csv``, ``metrics.csv`` (the long
format of docs/analysis.md), ``checkpoints.csv`` (the configs table), ``scores.parquet`` (every
value with its image, prompt and seed), ``analysis/`` (:func:`run_analysis`) and ``report/``
(``index.html``, assets, plots with their CSVs, thumbnails). Plots and ``analysis/`` are
memoised (:mod:`t2i_bench.report.cache`): redrawn only when their data or code changed, and
stale plots are removed; thumbnails are kept (they are named by image key).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from t2i_bench.analysis.aggregate import SIGNIFICANT_DIGITS, round_significant
from t2i_bench.analysis.choice import Choice, choose_checkpoints, write_choice
from t2i_bench.analysis.io import (
    BASE_CHECKPOINT,
    ID_COLUMNS,
    hyperparameter_columns,
    prepare_configs,
    read_configs_table,
    read_metrics_table,
    write_table,
)
from t2i_bench.analysis.ranking import rank_scale
from t2i_bench.errors import BenchError
from t2i_bench.metrics.base import Metric
from t2i_bench.provenance import version_drift
from t2i_bench.report import html
from t2i_bench.report.cache import ReportMemo, memoised
from t2i_bench.report.diagnostics import nearest_pairs_frame, write_agreement, write_variance
from t2i_bench.report.leaderboard import (
    Tradeoff,
    directions,
    present_metrics,
    write_csv,
)
from t2i_bench.report.plots import ci_frame, metric_ci_plot, tradeoff_plot, tradeoff_points
from t2i_bench.report.sections import checks, overview
from t2i_bench.report.tables import (
    Replicates,
    checkpoints_frame,
    images_frame,
    metrics_table,
    per_image_scores,
    scores_frame,
    select_scores,
)

if TYPE_CHECKING:
    from t2i_bench.runner import Run

#: Grouped cross-validation folds for the importance analysis: as many as the configurations
#: allow (two configurations per fold at least), between these bounds.
MIN_CV_FOLDS = 3
MAX_CV_FOLDS = 5
#: Fit-quality warnings shown one by one at the top of the page; more are counted.
FIT_ALERTS_SHOWN = 3
TINY_WARNING = (
    "Backbone profile 'tiny': the models are small and randomly initialised, so these numbers "
    "exercise the machinery, not real models. Do not compare them with published results."
)


@dataclass
class Tables:
    """The store read as tables, and the files written from them."""

    images: pd.DataFrame
    per_image: pd.DataFrame
    paths: list[Path]
    metrics: pd.DataFrame  # the long metrics table (metrics.csv)
    configs: pd.DataFrame  # the configs table (checkpoints.csv)
    replicates: Replicates = field(default_factory=dict)  # set values' bootstrap replicates


@dataclass
class Analysis:
    """What the analysis produced for the report."""

    leaderboard: pd.DataFrame
    cv_folds: int = 0
    skipped: str = ""
    notes: list[str] = field(default_factory=list)
    plots: pd.DataFrame | None = None
    r2: pd.DataFrame | None = None
    fit_alerts: list[str] = field(default_factory=list)
    choice: Choice | None = None
    rank_scores: pd.DataFrame | None = None
    agreement: pd.DataFrame | None = None
    variance: pd.DataFrame | None = None


def write_report(run: Run, *, tradeoff: Tradeoff | None = None) -> list[Path]:
    """Write the tables, ``analysis/`` and ``report/index.html``; return the main paths."""
    root = Path(run.config.output_dir)
    with ReportMemo(root) as memo:  # only what changed is recomputed and redrawn
        tables = write_tables(run, root)
        inputs = (
            tables.metrics,
            tables.configs,
            tables.per_image,  # the seed-variance table
            tables.replicates,  # the checkpoint choice's paired bootstrap
            directions(run.metrics),
            axes_of(run.metrics),
            run.config.seed,
        )
        analysis = memo.call(
            "analysis",
            (*inputs, run.config.analysis),
            lambda: analyze(run, root, tables),
            code=(analyze, "t2i_bench.analysis.analyze"),  # imported only to compute
            outputs=root / "analysis",
            returns=Analysis,
        )
        board = write_table(analysis.leaderboard, root / "leaderboard.csv")
        trade = tradeoff or Tradeoff.for_metrics(run.metrics)
        index = write_html(run, root, tables, analysis, trade)
        memo.sweep(root / "report" / "plots")
    return [board, *tables.paths, root / "analysis", index]


def write_tables(run: Run, root: Path) -> Tables:
    """``metrics.csv``, ``checkpoints.csv`` and ``scores.parquet`` from the store."""
    scores = select_scores(
        scores_frame(run.store, run.concepts),
        [m.name for m in run.metrics],
        [c.name for c in run.concepts],
        run.config.prompts.types,
    )
    images = images_frame(run.store)
    replicates = run.store.score_replicates()
    per_image = per_image_scores(scores, images, replicates)
    baselines = run.store.baselines_frame()
    metrics = metrics_table(per_image)
    configs = checkpoints_frame(run.store)
    paths = [
        write_csv(metrics, root / "metrics.csv", float_format=None),
        write_csv(baselines, root / "baselines.csv"),
        write_csv(configs, root / "checkpoints.csv", float_format=None),
        write_table(per_image, root / "scores.parquet"),
    ]
    return Tables(images, per_image, paths, metrics, configs, replicates)


def analyze(run: Run, root: Path, tables: Tables) -> Analysis:
    """Run the analysis on the tables just written (read as ``t2i-bench analyze`` reads the
    files, without reading them back).

    Importance needs enough configurations; when it cannot run, the reason becomes a warning
    (in ``analysis/warnings.txt`` and the report), never an error.
    """
    from t2i_bench.analysis.analyze import run_analysis  # CatBoost, matplotlib: when needed

    metrics = read_metrics_table(tables.metrics)
    configs = read_configs_table(tables.configs)
    out = root / "analysis"
    shutil.rmtree(out, ignore_errors=True)
    if not metrics["value"].notna().any():
        skipped = "no metric values in the store yet: run `t2i-bench score` first"
        _write_notes(out, [skipped])
        return Analysis(bare_leaderboard(configs), skipped=skipped)
    higher = directions(run.metrics)
    folds = cv_folds_for(configs)
    kwargs = dict(seed=run.config.seed, on_missing="drop")
    skipped = "" if folds else too_few_configurations(configs)
    result = None
    if folds:
        try:
            settings = run.config.analysis.model_dump()
            result = run_analysis(
                metrics, configs, out, higher, cv_folds=folds, **kwargs, **settings
            )
        except BenchError as exc:
            skipped = f"hyperparameter importance (CatBoost + SHAP) skipped: {exc}"
    if result is None or skipped:
        result = run_analysis(metrics, configs, out, higher, importance=False, **kwargs)
    choice = choose_checkpoints(metrics, axes_of(run.metrics), higher, tables.replicates)
    write_choice(choice, out)
    _write_notes(out, [*result.warnings, *choice.warnings, *([skipped] if skipped else [])])
    return Analysis(
        leaderboard=with_choice(result.leaderboard, choice),
        cv_folds=0 if skipped else folds,
        skipped=skipped,
        notes=list(result.warnings),
        plots=None if skipped else pd.read_csv(out / "plots.csv", dtype=str, keep_default_na=False),
        r2=None if skipped or result.importance is None else result.importance.r2,
        fit_alerts=list(result.fit_warnings),
        choice=choice,
        rank_scores=rank_scale(result.summary, higher),
        agreement=write_agreement(metrics, higher, out),
        variance=write_variance(tables.per_image, out),
    )


def axes_of(metrics) -> dict[str, str]:
    """metric name -> its evaluation axis (metrics without one are left out)."""
    return {m.name: m.axis for m in metrics if m.axis}


def with_choice(board: pd.DataFrame, choice: Choice) -> pd.DataFrame:
    """The leaderboard with the per-checkpoint answer (axis scores, better than base, Pareto
    set, best for) after ``rank_score``."""
    scores = choice.scores.copy()
    for col in scores.columns:
        if pd.api.types.is_float_dtype(scores[col]):
            scores[col] = round_significant(scores[col].to_numpy(), SIGNIFICANT_DIGITS)
    merged = board.merge(scores, on="checkpoint", how="left")
    added = [c for c in scores.columns if c != "checkpoint"]
    at = list(board.columns).index("rank_score") + 1 if "rank_score" in board else len(board)
    order = [*board.columns[:at], *added, *board.columns[at:]]
    return merged[order]


def _write_notes(out: Path, notes: list[str]) -> None:
    """``analysis/warnings.txt``: one warning per line."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "warnings.txt").write_text("".join(f"{n}\n" for n in notes), encoding="utf-8")


def configuration_count(configs: pd.DataFrame) -> int:
    """Distinct configurations (``config_id``) among the adapters."""
    adapters = configs[configs["checkpoint"].ne(BASE_CHECKPOINT)]
    return int(adapters["config_id"].nunique())


def cv_folds_for(configs: pd.DataFrame) -> int:
    """Folds for grouped CV: two configurations per fold, 3 to 5 folds; 0 when too few."""
    folds = min(MAX_CV_FOLDS, configuration_count(configs) // 2)
    return folds if folds >= MIN_CV_FOLDS else 0


def too_few_configurations(configs: pd.DataFrame) -> str:
    """The warning shown when there are too few configurations for the importance analysis."""
    return (
        "hyperparameter importance (CatBoost + SHAP) skipped: grouped cross-validation needs "
        f"at least {2 * MIN_CV_FOLDS} configurations ({MIN_CV_FOLDS} folds of 2); this run has "
        f"{configuration_count(configs)}"
    )


def bare_leaderboard(configs: pd.DataFrame) -> pd.DataFrame:
    """Checkpoints and hyperparameters only, base first: the leaderboard with no values."""
    table = prepare_configs(configs)
    ids = [c for c in ID_COLUMNS if c in table.columns and c != "checkpoint"]
    table = table[["checkpoint", *hyperparameter_columns(table), *ids]]
    order = table["checkpoint"].ne(BASE_CHECKPOINT).argsort(kind="mergesort")
    return table.iloc[order].reset_index(drop=True)


def write_html(
    run: Run, root: Path, tables: Tables, analysis: Analysis, tradeoff: Tradeoff | None
) -> Path:
    """Plots, thumbnails and ``report/index.html``."""
    report_dir = root / "report"
    higher = directions(run.metrics)
    board = analysis.leaderboard
    leaderboard = html.leaderboard_view(board, higher, axes_of(run.metrics))
    trade, trade_note = tradeoff_figure(board, tradeoff, higher, report_dir)
    context = {
        "title": run.config.name,
        "alerts": alerts(run, analysis),
        "folded_fit_alerts": (
            analysis.fit_alerts if len(analysis.fit_alerts) > FIT_ALERTS_SHOWN else []
        ),
        "notes": score_notes(run),
        "failures": run.store.failures(),
        "summary": summary_items(run, tables, board),
        "provenance": provenance_items(run),
        "packages": package_items(run),
        "leaderboard": leaderboard,
        "overview": overview(
            analysis.choice,
            analysis.rank_scores,
            board,
            run.metrics,
            analysis.plots,
            report_dir,
        ),
        "checks": checks(
            analysis.agreement,
            analysis.variance,
            nearest_pairs(run, tables.images),
            board,
            run.metrics,
            root,
            reference_paths(run),
            report_dir,
        ),
        "tradeoff": trade,
        "tradeoff_note": trade_note,
        "metric_plots": metric_figures(board, higher, report_dir),
        "analysis": analysis,
        "shap": shap_figures(analysis),
        "r2": [] if analysis.r2 is None else analysis.r2.to_dict("records"),
        "grids": html.image_grids(tables.images, root, report_dir, tables.metrics),
        "max_columns": html.MAX_GRID_COLUMNS,
        "fmt": html.format_number,
    }
    return html.render_page(context, report_dir)


def pair_metrics(metrics: list) -> list:
    """The run's metrics that explain their values with nearest reference pairs."""
    return [m for m in metrics if type(m).reference_pairs is not Metric.reference_pairs]


def nearest_pairs(run: Run, images: pd.DataFrame) -> pd.DataFrame | None:
    """Each scored image's nearest reference for the metrics that show such pairs (read from
    the cached embeddings; no model is loaded), the closest first; None without such a
    metric."""
    chosen = pair_metrics(run.metrics)
    if not chosen:
        return None
    from t2i_bench.runner import groups

    found = []
    for group in groups(run):
        for metric in chosen:
            if metric.applies_to(group, run.base.name):
                for pair in metric.reference_pairs(group.for_metric(metric)):
                    found.append(
                        (metric.name, group.checkpoint, group.concept.name, group.prompt_type, pair)
                    )
    return nearest_pairs_frame(found, images)


def reference_paths(run: Run) -> dict[str, Path]:
    """sha256 -> file of every concept reference image."""
    from t2i_bench.metrics.embed import reference_shas

    return reference_shas(run.concepts) if pair_metrics(run.metrics) else {}


def tradeoff_figure(
    board: pd.DataFrame, tradeoff: Tradeoff | None, higher: dict[str, bool], report_dir: Path
) -> tuple[html.PlotRef | None, str]:
    """The fidelity-vs-controllability plot, or why it is missing."""
    if tradeoff is None:
        return None, (
            "The trade-off plot needs a fidelity and a controllability metric; this run "
            "does not compute both."
        )
    if not tradeoff.x.columns(board) or not tradeoff.y.columns(board):
        return None, (
            f"The trade-off plot needs {tradeoff.x.metric} and {tradeoff.y.metric} values; "
            "this run has no values for at least one of them."
        )
    points = tradeoff_points(board, tradeoff, higher)
    x_label, y_label = tradeoff.x.describe(board), tradeoff.y.describe(board)
    png = memoised(tradeoff_plot)(points, x_label, y_label, report_dir / "plots" / "tradeoff")
    caption = (
        f"x: {x_label}; y: {y_label}; each point a checkpoint (mean over concepts), colour by "
        "algorithm, star: base model, ringed and joined: the Pareto front."
    )
    return _plot_ref(png, report_dir, caption), ""


def metric_figures(
    board: pd.DataFrame, higher: dict[str, bool], report_dir: Path
) -> list[html.PlotRef]:
    """One plot of means with CIs per metric."""
    figures = []
    for metric in present_metrics(board):
        stem = report_dir / "plots" / f"ci_{_slug(metric)}"
        frame = ci_frame(board, metric)
        png = memoised(metric_ci_plot)(frame, metric, higher.get(metric, True), stem)
        caption = (
            f"{metric}: mean per checkpoint and prompt type with 95% bootstrap CIs (per-image "
            "metrics: over images; set metrics: over prompts and seeds, computed when scored)."
        )
        figures.append(_plot_ref(png, report_dir, caption))
    return figures


def shap_figures(analysis: Analysis) -> list[html.PlotRef]:
    """The SHAP plots written by the analysis, as listed in ``analysis/plots.csv``."""
    if analysis.plots is None:
        return []
    figures = []
    for row in analysis.plots.fillna("").itertuples(index=False):
        if row.kind == "curves":
            continue  # training curves: in the overview
        if row.kind == "summary":
            caption = "Share of each target's mean |SHAP| per hyperparameter (R² cv under each)."
        elif row.kind == "beeswarm":
            caption = f"SHAP values per checkpoint for {row.target}."
        else:
            caption = f"SHAP dependence of {row.target} on each hyperparameter."
        if row.group not in ("", "all"):
            caption = f"{row.group}: {caption}"
        figures.append(html.PlotRef(f"../analysis/{row.png}", f"../analysis/{row.csv}", caption))
    return figures


def alerts(run: Run, analysis: Analysis) -> list[str]:
    """Warnings shown at the top of the page."""
    found = []
    if run.config.backbones.profile == "tiny":
        found.append(TINY_WARNING)
    found.extend(str(w) for w in run.store.get_meta("warnings", []) or [])
    found.extend(version_drift(run.store.get_meta("provenance_history", []) or []))
    found.extend(note_alerts(score_notes(run)))
    if analysis.skipped:
        found.append(analysis.skipped)
    found.extend(fit_alert_lines(analysis.fit_alerts))
    failures = run.store.failures()
    if failures:
        found.append(f"{len(failures)} failure(s) recorded in the store; see the table below.")
    return found


def fit_alert_lines(fit_alerts: list[str], shown: int = FIT_ALERTS_SHOWN) -> list[str]:
    """The fit-quality warnings for the top of the page: each one when there are few, else
    one line that counts them (the page lists them all in a fold below it)."""
    if len(fit_alerts) <= shown:
        return list(fit_alerts)
    return [
        f"{len(fit_alerts)} importance fits have a cross-validated R² at or below the threshold: "
        "their importances describe this sweep only and do not generalise to new "
        "configurations (each listed below)."
    ]


def score_notes(run: Run) -> list[tuple[str, str]]:
    """(item, note) pairs the metrics recorded about their values (e.g. FID with few samples)."""
    notes = run.store.get_meta("score_notes", {}) or {}
    return [(item, str(note)) for item, texts in sorted(notes.items()) for note in texts]


def note_alerts(notes: list[tuple[str, str]]) -> list[str]:
    """One line per metric: how many values carry a note, and the first note."""
    by_metric: dict[str, list[str]] = {}
    for item, note in notes:
        by_metric.setdefault(item.split("/", 1)[0], []).append(note)
    return [
        f"{metric}: {len(texts)} value(s) come with a warning (all listed below), e.g. {texts[0]}"
        for metric, texts in by_metric.items()
    ]


def summary_items(run: Run, tables: Tables, board: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, value) pairs describing the run."""
    cfg = run.config
    images = tables.images
    adapters = board["checkpoint"].ne(BASE_CHECKPOINT)
    configs = board.loc[adapters, "config_id"].nunique() if "config_id" in board else 0
    directions_text = ", ".join(
        f"{m.name} ({'↑' if m.higher_is_better else '↓'}, {m.kind})" for m in run.metrics
    )
    sampler = cfg.sampler
    return [
        ("run", cfg.name),
        ("backbone profile", cfg.backbones.profile),
        ("base model", str(cfg.base_model.source)),
        ("checkpoints", f"{int(adapters.sum())} adapters in {configs} configurations + base"),
        ("concepts", ", ".join(f"{c.name} ({c.category})" for c in run.concepts)),
        ("prompt types", ", ".join(cfg.prompts.types)),
        ("images", f"{int(images['image'].ne('').sum())} rendered of {len(images)} planned"),
        ("metric values", str(int(tables.per_image["value"].notna().sum()))),
        ("metrics", directions_text),
        (
            "sampler",
            f"{sampler.scheduler}, {sampler.steps} steps, guidance {sampler.guidance_scale}, "
            f"{sampler.width}×{sampler.height}",
        ),
        ("seeds", f"{cfg.images_per_prompt} per prompt from seed {cfg.seed}"),
    ]


def provenance_items(run: Run) -> list[tuple[str, str]]:
    """(label, value) pairs from the store's provenance record."""
    record = run.store.get_meta("provenance", {}) or {}
    labels = ("git_revision", "config_hash", "python", "platform")
    return [(key.replace("_", " "), str(record.get(key) or "unknown")) for key in labels]


def package_items(run: Run) -> list[tuple[str, str]]:
    """(package, version) pairs from the store's provenance record."""
    record = run.store.get_meta("provenance", {}) or {}
    return sorted((name, version or "") for name, version in record.get("packages", {}).items())


def _plot_ref(png: Path, report_dir: Path, caption: str) -> html.PlotRef:
    """A plot and its CSV, relative to ``report/``."""
    csv = png.with_suffix(".csv")
    return html.PlotRef(
        png.relative_to(report_dir).as_posix(), csv.relative_to(report_dir).as_posix(), caption
    )


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)

"""The report's sections as the page shows them: the overview (which checkpoint per axis,
the rank-score heatmap, the axis scores and the training curves) and the checks (metric
agreement, seeds needed, nearest reference pairs, the multiplier sweep)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from t2i_bench.analysis.choice import LEVEL, Choice
from t2i_bench.analysis.curves import metric_of
from t2i_bench.analysis.io import BASE_CHECKPOINT
from t2i_bench.metrics.base import Metric
from t2i_bench.prompt_types import AXES, prompt_type_order
from t2i_bench.report.cache import claim, memoised
from t2i_bench.report.diagnostics import (
    PairView,
    SeedAdvice,
    agreement_plot,
    multiplier_frame,
    multiplier_plot,
    seed_advice,
    variance_plot,
)
from t2i_bench.report.html import PlotRef, format_number, write_thumbnail
from t2i_bench.report.leaderboard import write_csv
from t2i_bench.report.overview import axes_frame, axes_plot, heatmap_frame, rank_heatmap


@dataclass(frozen=True)
class AxisAnswer:
    """One row of the page's "which checkpoint" table."""

    axis: str
    best: str
    score: str
    vs_base: str
    vs_runner_up: str
    metrics: str


@dataclass
class Overview:
    """What the page opens with."""

    answers: list[AxisAnswer] = field(default_factory=list)
    pareto: list[str] = field(default_factory=list)
    heatmap: PlotRef | None = None
    axes: PlotRef | None = None
    curves: list[PlotRef] = field(default_factory=list)  # one per axis
    more_curves: list[PlotRef] = field(default_factory=list)  # every other curve, folded
    level: str = f"{LEVEL:.0%}"


def overview(
    choice: Choice | None,
    rank_scores: pd.DataFrame | None,
    board: pd.DataFrame,
    metrics: Sequence[Metric],
    plots: pd.DataFrame | None,
    report_dir: Path,
) -> Overview:
    """The overview: answers per axis, the heatmap, the axes plot and the training curves."""
    out = Overview()
    axes = {m.name: m.axis for m in metrics if m.axis}
    if choice is not None and not choice.table.empty:
        out.answers = [_answer(row) for row in choice.table.to_dict("records")]
        mask = choice.scores["pareto"].map(lambda v: str(v) == "True")
        out.pareto = choice.scores.loc[mask, "checkpoint"].tolist()
        algos = _algos(board)
        frame = axes_frame(choice.scores, algos)
        if len(frame):
            png = memoised(axes_plot)(frame, report_dir / "plots" / "overview_axes")
            caption = (
                "Axis scores of every checkpoint (mean rank score of the axis's metrics, 1 = "
                "best); a line per checkpoint, colour by algorithm, dashed grey: off the Pareto "
                "set over the axes; star: the best on that axis."
            )
            out.axes = _ref(png, report_dir, caption)
    if rank_scores is not None and len(rank_scores):
        best = (
            {}
            if choice is None
            else dict(zip(choice.table["axis"], choice.table["best"], strict=True))
        )
        order = board["checkpoint"].astype(str).tolist()
        frame = heatmap_frame(rank_scores, axes, best, order)
        png = memoised(rank_heatmap)(frame, report_dir / "plots" / "overview_heatmap")
        shown = frame["checkpoint"].nunique()
        caption = (
            "Rank score of each checkpoint on each metric and prompt type (1 = best, whatever "
            "the metric's direction), columns grouped by axis; an orange box marks the best "
            "checkpoint of each axis."
        )
        if shown < len(order):
            caption += f" {shown} of {len(order)} checkpoints shown (base, bests, top ranks)."
        out.heatmap = _ref(png, report_dir, caption)
    out.curves, out.more_curves = curve_figures(plots, metrics)
    return out


def curve_figures(
    plots: pd.DataFrame | None, metrics: Sequence[Metric]
) -> tuple[list[PlotRef], list[PlotRef]]:
    """The training curves the analysis wrote: the first metric of each axis (in the run's
    metric order, first prompt type), then all the others."""
    if plots is None or plots.empty:
        return [], []
    curves = plots[plots["kind"].eq("curves")]
    rank = {m.name: i for i, m in enumerate(metrics)}
    axis_of = {m.name: m.axis for m in metrics}

    def key(target: str) -> tuple:
        metric = metric_of(target)
        prompt_type = target[len(metric) + 1 :]
        return (rank.get(metric, len(rank)), prompt_type_order(prompt_type))

    targets = sorted(curves["target"], key=key)
    refs = {
        row.target: PlotRef(
            f"../analysis/{row.png}",
            f"../analysis/{row.csv}",
            f"Training curves of {row.target}: a line per run (configuration × seed), colour "
            "per configuration; ringed: the run's best epoch.",
        )
        for row in curves.itertuples(index=False)
    }
    first: dict[str, str] = {}
    for target in targets:
        axis = axis_of.get(metric_of(target)) or ""
        if axis in AXES and axis not in first:
            first[axis] = target
    lead = [refs[first[a]] for a in AXES if a in first]
    rest = [refs[t] for t in targets if t not in first.values()]
    return lead, rest


def _answer(row: dict) -> AxisAnswer:
    """Verdicts in words, with the paired differences' interval."""
    vs_base = ""
    if row.get("best") == BASE_CHECKPOINT:
        vs_base = "the base model itself"
    elif str(row.get("better_than_base")) in ("True", "False"):
        verdict = "yes" if str(row["better_than_base"]) == "True" else "not significantly"
        vs_base = f"{verdict} (difference {_interval(row, 'vs_base')})"
    else:
        vs_base = "— (the base model has no value on this axis)"
    vs_runner_up = ""
    if isinstance(row.get("runner_up"), str) and row["runner_up"]:
        verdict = "yes" if str(row["better_than_runner_up"]) == "True" else "not significantly"
        vs_runner_up = (
            f"{verdict} than {row['runner_up']} ({format_number(row['runner_up_score'])}; "
            f"difference {_interval(row, 'vs_runner_up')})"
        )
    return AxisAnswer(
        axis=str(row["axis"]),
        best=str(row["best"]),
        score=format_number(float(row["score"])),
        vs_base=vs_base,
        vs_runner_up=vs_runner_up,
        metrics=str(row.get("metrics") or "").replace(";", ", "),
    )


def _interval(row: dict, prefix: str) -> str:
    low, high = row.get(f"{prefix}_low"), row.get(f"{prefix}_high")
    return f"[{format_number(low)}, {format_number(high)}]"


def _algos(board: pd.DataFrame) -> dict[str, str]:
    if "algo" not in board.columns:
        return {
            c: BASE_CHECKPOINT if c == BASE_CHECKPOINT else "unknown" for c in board["checkpoint"]
        }
    out = {}
    for name, algo in zip(board["checkpoint"], board["algo"], strict=True):
        out[str(name)] = (
            BASE_CHECKPOINT
            if name == BASE_CHECKPOINT
            else ("unknown" if pd.isna(algo) or algo == "" else str(algo))
        )
    return out


def _ref(png: Path, report_dir: Path, caption: str) -> PlotRef:
    csv = png.with_suffix(".csv")
    return PlotRef(
        png.relative_to(report_dir).as_posix(), csv.relative_to(report_dir).as_posix(), caption
    )


@dataclass
class Checks:
    """The page's measurement checks: metric agreement, seeds needed, nearest reference
    pairs, and metrics against the adapter multiplier."""

    agreement: PlotRef | None = None
    agreement_csv: str = ""
    advice: list[SeedAdvice] = field(default_factory=list)
    variance: PlotRef | None = None
    pairs: list[PairView] = field(default_factory=list)
    pairs_csv: str = ""
    multiplier: PlotRef | None = None


def checks(
    agreement: pd.DataFrame | None,
    variance: pd.DataFrame | None,
    pairs: pd.DataFrame | None,
    board: pd.DataFrame,
    metrics: Sequence[Metric],
    run_root: Path,
    reference_paths: dict[str, Path],
    report_dir: Path,
) -> Checks:
    """Plots and views of the checks, from their tables."""
    out = Checks()
    plots = report_dir / "plots"
    if agreement is not None and len(agreement):
        png = memoised(agreement_plot)(agreement, plots / "agreement")
        if png is not None:
            caption = (
                "Spearman correlation between metrics across checkpoints, per prompt type, "
                "oriented by direction: +1 both rank the checkpoints alike from better to "
                "worse, −1 in tension; blank: too few checkpoints or a constant metric."
            )
            out.agreement = _ref(png, report_dir, caption)
        out.agreement_csv = "../analysis/agreement.csv"
    if variance is not None and len(variance):
        out.advice = seed_advice(variance)
        png = memoised(variance_plot)(variance, plots / "variance")
        if png is not None:
            caption = (
                "Where an image's value varies: between checkpoints (what we want to see), "
                "prompts, seeds, checkpoint × prompt and checkpoint × seed (noise)."
            )
            out.variance = _ref(png, report_dir, caption)
    if pairs is not None and len(pairs):
        write_csv_path = plots / "nearest_pairs.csv"
        write_csv(pairs, write_csv_path)
        claim(write_csv_path)
        out.pairs_csv = write_csv_path.relative_to(report_dir).as_posix()
        out.pairs = [
            _pair_view(row, run_root, reference_paths, report_dir)
            for row in pairs.to_dict("records")
        ]
    frame = multiplier_frame(board, {m.name: m.axis for m in metrics if m.axis})
    if len(frame):
        png = memoised(multiplier_plot)(frame, plots / "multiplier")
        caption = (
            "Fidelity and preservation metrics (bleed among them) against the adapter "
            "multiplier: a line per adapter file from the base model (multiplier 0), whiskers: "
            "95% CIs, dashed: the base model."
        )
        out.multiplier = _ref(png, report_dir, caption)
    return out


def _pair_view(
    row: dict, run_root: Path, reference_paths: dict[str, Path], report_dir: Path
) -> PairView:
    """Thumbnails of a generated image and its nearest reference."""
    image = report_dir / "thumbs" / f"{row['image_key']}.png"
    write_thumbnail(run_root / row["image"], image)
    source = reference_paths[row["reference_sha"]]
    reference = report_dir / "thumbs" / f"ref-{row['reference_sha'][:24]}.png"
    write_thumbnail(source, reference)
    return PairView(
        metric=row["metric"],
        checkpoint=row["checkpoint"],
        concept=row["concept"],
        prompt_type=row["prompt_type"],
        prompt=row["prompt"],
        image=image.relative_to(report_dir).as_posix(),
        image_href=f"../{row['image']}",
        reference=reference.relative_to(report_dir).as_posix(),
        reference_href=Path(os.path.relpath(source, report_dir)).as_posix(),
        distance=row["distance"],
        threshold=row["threshold"],
        is_copy=bool(row["is_copy"]),
    )

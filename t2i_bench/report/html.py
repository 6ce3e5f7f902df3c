"""The HTML report: page context (leaderboard, image grids, plots) and jinja2 rendering.

Every string from configs, prompts or file names reaches the page through jinja2 with
autoescape on; the page's script reads only ``data-v`` attributes and uses ``textContent``.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from PIL import Image

from t2i_bench.analysis.io import BASE_CHECKPOINT
from t2i_bench.prompt_types import AXES, PROMPT_TYPES, prompt_type_order
from t2i_bench.report.leaderboard import (
    CI_SUFFIXES,
    info_columns,
    metric_value_columns,
    split_metric_column,
)
from t2i_bench.store import atomic_write_bytes, png_bytes

TEMPLATES = Path(__file__).parent / "templates"
ASSETS = ("report.css", "report.js")
THUMB_SIZE = 128
#: Image columns (prompt × seed) shown per grid; the rest are counted, not drawn.
MAX_GRID_COLUMNS = 8


@dataclass(frozen=True)
class Cell:
    """One leaderboard cell: the text shown, the value sorted on, an optional CI, a CSS class,
    a mark after the value and its explanation."""

    text: str
    sort: str
    ci: str = ""
    css: str = ""
    mark: str = ""
    title: str = ""


@dataclass(frozen=True)
class Header:
    """One leaderboard column header (``label`` is shown; ``name`` is the CSV column)."""

    name: str
    numeric: bool
    hint: str = ""
    css: str = ""
    label: str = ""
    arrow: str = ""


@dataclass(frozen=True)
class HeaderGroup:
    """A header cell spanning a group of columns (an axis, the summary, hyperparameters)."""

    label: str
    span: int
    css: str = ""


@dataclass
class Leaderboard:
    """The HTML leaderboard: header groups, headers and rows of cells."""

    groups: list[HeaderGroup]
    headers: list[Header]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class Thumb:
    """A thumbnail (``src``) linking to the full-size image (``href``)."""

    src: str
    href: str
    title: str


@dataclass
class GridRow:
    """One checkpoint's images; a cell holds one thumb, or (base, adapter) for agnostic;
    ``values``: the checkpoint's mean of each metric on this concept and prompt type."""

    checkpoint: str
    cells: list[list[Thumb]] = field(default_factory=list)
    values: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Grid:
    """Images of every checkpoint for one concept × prompt type."""

    concept: str
    prompt_type: str
    columns: list[str]
    rows: list[GridRow]
    paired: bool
    total_columns: int


@dataclass(frozen=True)
class PlotRef:
    """A plot in the page: PNG and CSV paths relative to ``report/``, and a caption."""

    png: str
    csv: str
    caption: str


def leaderboard_view(
    board: pd.DataFrame, higher_is_better: dict[str, bool], axes: dict[str, str] | None = None
) -> Leaderboard:
    """The leaderboard as the page shows it: checkpoint and what it is best for, then the
    metric columns grouped by axis (registry order) with direction arrows and CIs folded into
    their means, then the summary (rank score, axis scores, Pareto set), then the
    hyperparameters (hidden until asked for); ids are left out."""
    axes = axes or {}
    metrics = metric_value_columns(board)
    by_axis: dict[str, list[str]] = {}
    for column in metrics:
        axis = axes.get(split_metric_column(column)[0]) or "other"
        by_axis.setdefault(axis, []).append(column)
    order = sorted(by_axis, key=lambda a: (list(AXES).index(a) if a in AXES else len(AXES), a))
    info = info_columns(board)
    lead = [c for c in ("checkpoint", "best_for") if c in info]
    summary = [c for c in info if c == "rank_score" or _is_axis_score(c) or c == "pareto"]
    hidden = {c for c in info if c.startswith("axis_") and c.endswith(VS_BASE)}
    params = [c for c in info if c not in {*lead, *summary, *hidden}]
    groups = [HeaderGroup("", len(lead))]
    headers = [Header(c, False, _info_hint(c), label=_label(c)) for c in lead]
    for axis in order:
        groups.append(HeaderGroup(axis, len(by_axis[axis]), "axis"))
        for column in by_axis[axis]:
            metric = split_metric_column(column)[0]
            arrow = "↑" if higher_is_better.get(metric, True) else "↓"
            headers.append(
                Header(column, True, _metric_hint(column, higher_is_better), "", "", arrow)
            )
    if summary:
        groups.append(HeaderGroup("summary", len(summary), "summary"))
        headers += [Header(c, True, _info_hint(c), label=_label(c)) for c in summary]
    if params:
        groups.append(HeaderGroup("hyperparameters", len(params), "hp"))
        headers += [Header(c, pd.api.types.is_numeric_dtype(board[c]), "", "hp") for c in params]
    rows = []
    for _, record in board.iterrows():
        cells = [_info_cell(record[c]) for c in lead]
        cells += [_metric_cell(record, c) for a in order for c in by_axis[a]]
        cells += [_summary_cell(record, c) for c in summary]
        cells += [_info_cell(record[c], "hp") for c in params]
        rows.append(cells)
    return Leaderboard(groups, headers, rows)


def image_grids(
    images: pd.DataFrame, run_root: Path, report_dir: Path, metrics: pd.DataFrame | None = None
) -> list[Grid]:
    """One grid per concept × prompt type from the rendered images, thumbnails written; with
    the long ``metrics`` table, each row carries its checkpoint's metric means, so the values
    sit next to the images they come from."""
    rendered = images[images["image"].ne("")]
    means = _grid_means(metrics)
    pairs = rendered[["concept", "prompt_type"]].drop_duplicates().itertuples(index=False)
    keys = sorted(pairs, key=lambda k: (k[0], *prompt_type_order(k[1])))
    grids = []
    for concept, prompt_type in keys:
        group = rendered[rendered["concept"].eq(concept) & rendered["prompt_type"].eq(prompt_type)]
        grid = _grid(str(concept), str(prompt_type), group, run_root, report_dir)
        for row in grid.rows:
            row.values = means.get((row.checkpoint, grid.concept, grid.prompt_type), [])
        grids.append(grid)
    return grids


def _grid_means(metrics: pd.DataFrame | None) -> dict[tuple[str, str, str], list[tuple[str, str]]]:
    """(checkpoint, concept, prompt type) -> [(metric, mean)] in metric-name order."""
    if metrics is None or metrics.empty:
        return {}
    keys = ["checkpoint", "concept", "prompt_type", "metric"]
    means = metrics.groupby(keys, sort=True)["value"].mean()
    out: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for (checkpoint, concept, prompt_type, metric), value in means.items():
        if pd.notna(value):
            out.setdefault((checkpoint, concept, prompt_type), []).append(
                (str(metric), format_number(float(value)))
            )
    return out


def write_thumbnail(source: Path, target: Path) -> None:
    """A PNG at most ``THUMB_SIZE`` pixels on its long side (kept if it exists)."""
    if target.is_file():
        return
    with Image.open(source) as image:
        thumb = image.convert("RGB")
        thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    atomic_write_bytes(target, png_bytes(thumb))


def render_page(context: dict[str, Any], report_dir: Path) -> Path:
    """Render ``index.html`` (autoescaped) and copy the CSS/JS assets beside it."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("index.html.j2").render(**context)
    for name in ASSETS:
        (report_dir / "assets").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATES / name, report_dir / "assets" / name)
    path = report_dir / "index.html"
    atomic_write_bytes(path, html.encode("utf-8"))
    return path


def format_number(value: Any) -> str:
    """Four significant digits; empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _grid(
    concept: str, prompt_type: str, group: pd.DataFrame, run_root: Path, report_dir: Path
) -> Grid:
    """The grid of one concept × prompt type: columns are (template, seed) pairs."""
    keys = list(dict.fromkeys(zip(group["template"], group["seed"], strict=True)))
    shown = keys[:MAX_GRID_COLUMNS]
    prompts = group.drop_duplicates(["template", "seed"]).set_index(["template", "seed"])
    columns = [f"{prompts.loc[k, 'prompt']} (seed {k[1]})" for k in shown]
    thumbs = {
        (row.checkpoint, row.template, row.seed): _thumb(row, run_root, report_dir)
        for row in group.itertuples(index=False)
        if (row.template, row.seed) in shown
    }
    spec = PROMPT_TYPES.get(prompt_type)
    paired = spec is not None and not spec.mentions_concept  # shown beside the base image
    rows = []
    for checkpoint in dict.fromkeys(group["checkpoint"]):
        rows.append(GridRow(str(checkpoint), _cells(thumbs, str(checkpoint), shown, paired)))
    return Grid(concept, prompt_type, columns, rows, paired, len(keys))


def _cells(
    thumbs: dict[tuple, Thumb], checkpoint: str, keys: list[tuple], paired: bool
) -> list[list[Thumb]]:
    """A row's cells: the checkpoint's thumb, preceded by the base's when ``paired``."""
    cells = []
    for template, seed in keys:
        own = thumbs.get((checkpoint, template, seed))
        base = thumbs.get((BASE_CHECKPOINT, template, seed))
        cell = [own] if own else []
        if paired and checkpoint != BASE_CHECKPOINT and base and own:
            cell = [base, own]
        cells.append(cell)
    return cells


def _thumb(row: Any, run_root: Path, report_dir: Path) -> Thumb:
    """Write the thumbnail of one rendered image and describe it."""
    name = f"{row.image_key}.png"
    write_thumbnail(run_root / row.image, report_dir / "thumbs" / name)
    title = f"{row.checkpoint} · seed {row.seed} · {row.prompt}"
    return Thumb(src=f"thumbs/{name}", href=f"../{row.image}", title=title)


VS_BASE = ".vs_base"


def _is_axis_score(column: str) -> bool:
    return column.startswith("axis_") and not column.endswith(VS_BASE)


def _label(column: str) -> str:
    if _is_axis_score(column):
        return column.removeprefix("axis_")
    return {"best_for": "best for", "rank_score": "rank score", "pareto": "Pareto"}.get(
        column, column
    )


def _info_cell(value: Any, css: str = "") -> Cell:
    text = format_number(value)
    if isinstance(value, float) and not math.isnan(value):
        return Cell(text, repr(value), css=css)
    return Cell(text, "" if value is None or pd.isna(value) else str(value), css=css)


def _summary_cell(record: pd.Series, column: str) -> Cell:
    """Rank and axis scores; an axis score significantly better than the base model's gets
    a mark; the Pareto flag reads yes/no."""
    value = record[column]
    if column == "pareto":
        text = {"True": "yes", "False": "no"}.get(str(value), "")
        return Cell(text, text)
    cell = _info_cell(value)
    if _is_axis_score(column) and str(record.get(column + VS_BASE)) == "True":
        note = "significantly better than the base model (paired bootstrap, 95%)"
        return Cell(cell.text, cell.sort, mark="▲", title=note)
    return cell


def _metric_cell(record: pd.Series, column: str) -> Cell:
    value = record[column]
    low, high = (record[column + s] for s in CI_SUFFIXES)
    ci = "" if pd.isna(low) or low == high else f"[{format_number(low)}, {format_number(high)}]"
    return Cell(format_number(value), "" if pd.isna(value) else repr(float(value)), ci)


def _metric_hint(column: str, higher_is_better: dict[str, bool]) -> str:
    metric, prompt_type = split_metric_column(column)
    better = "higher" if higher_is_better.get(metric, True) else "lower"
    return f"{metric} on {prompt_type} prompts: mean over concepts, 95% CI; {better} is better"


def _info_hint(column: str) -> str:
    if column == "rank_score":
        return "mean rank-scaled score over all metric × prompt type pairs (1 = best)"
    if _is_axis_score(column):
        axis = column.removeprefix("axis_")
        return f"{axis}: mean rank score over the {axis} metrics (1 = best); ▲ beats the base model"
    if column == "best_for":
        return "the axes on which this checkpoint is the best"
    if column == "pareto":
        return "on the Pareto set over the axes: no checkpoint is at least as good on every axis"
    return ""

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
from t2i_bench.prompt_types import PROMPT_TYPES, prompt_type_order
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
    """One leaderboard cell: the text shown, the value sorted on, an optional CI."""

    text: str
    sort: str
    ci: str = ""


@dataclass(frozen=True)
class Header:
    """One leaderboard column header."""

    name: str
    numeric: bool
    hint: str = ""


@dataclass(frozen=True)
class Thumb:
    """A thumbnail (``src``) linking to the full-size image (``href``)."""

    src: str
    href: str
    title: str


@dataclass
class GridRow:
    """One checkpoint's images; a cell holds one thumb, or (base, adapter) for agnostic."""

    checkpoint: str
    cells: list[list[Thumb]] = field(default_factory=list)


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
    board: pd.DataFrame, higher_is_better: dict[str, bool]
) -> tuple[list[Header], list[list[Cell]]]:
    """Headers and cells of the HTML leaderboard (ids hidden, CIs folded into their means)."""
    info = info_columns(board)
    metrics = metric_value_columns(board)
    headers = [Header(c, pd.api.types.is_numeric_dtype(board[c]), _info_hint(c)) for c in info]
    headers += [Header(c, True, _metric_hint(c, higher_is_better)) for c in metrics]
    rows = []
    for _, record in board.iterrows():
        cells = [_info_cell(record[c]) for c in info]
        cells += [_metric_cell(record, c) for c in metrics]
        rows.append(cells)
    return headers, rows


def image_grids(images: pd.DataFrame, run_root: Path, report_dir: Path) -> list[Grid]:
    """One grid per concept × prompt type from the rendered images, thumbnails written."""
    rendered = images[images["image"].ne("")]
    pairs = rendered[["concept", "prompt_type"]].drop_duplicates().itertuples(index=False)
    keys = sorted(pairs, key=lambda k: (k[0], *prompt_type_order(k[1])))
    grids = []
    for concept, prompt_type in keys:
        group = rendered[rendered["concept"].eq(concept) & rendered["prompt_type"].eq(prompt_type)]
        grids.append(_grid(str(concept), str(prompt_type), group, run_root, report_dir))
    return grids


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


def _info_cell(value: Any) -> Cell:
    text = format_number(value)
    if isinstance(value, float) and not math.isnan(value):
        return Cell(text, repr(value))
    return Cell(text, "" if value is None or pd.isna(value) else str(value))


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
    return ""

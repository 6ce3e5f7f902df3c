"""Deterministic matplotlib figures for the analysis: Agg, no pyplot state, byte-stable PNGs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 200
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "svg.hashsalt": "t2i-bench",
}


@contextmanager
def figure(size: tuple[float, float]) -> Iterator[Figure]:
    """A pyplot-free Agg figure in the package style."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, dpi=DPI)
        FigureCanvasAgg(fig)
        yield fig


def with_suffix(stem: Path, suffix: str) -> Path:
    """``stem`` plus a suffix (target names contain dots, so no ``Path.with_suffix``)."""
    return stem.parent / f"{stem.name}{suffix}"


def save(fig: Figure, stem: Path, extra: Sequence[Artist] = ()) -> Path:
    """Save ``stem.png`` atomically, with no version string in the metadata (byte-stable).

    ``extra``: artists outside the axes (legends) that the tight bounding box must include.
    """
    target = with_suffix(stem, ".png")
    tmp = with_suffix(stem, ".png.tmp")
    fig.savefig(
        tmp,
        format="png",
        dpi=DPI,
        bbox_inches="tight",
        bbox_extra_artists=list(extra) or None,
        metadata={"Software": None},
    )
    os.replace(tmp, target)
    return target


def axis_label(feature: str) -> str:
    """Axis label of a feature (``log10_lr`` spelled out)."""
    return "log10(learning rate)" if feature == "log10_lr" else feature

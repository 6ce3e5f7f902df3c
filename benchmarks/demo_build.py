"""Comparison: ``t2i-bench demo`` (a fresh build) with one competing CPU-bound process vs 60 s;
measured together with ``first_run`` (see ``benchmarks/first_run.py``)."""

from __future__ import annotations

from benchmarks.common import Context, Row
from benchmarks.first_run import demo_row

NAME = "demo_build"


def run(ctx: Context) -> Row:
    return demo_row(ctx)

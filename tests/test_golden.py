"""Golden table: the small end-to-end run (tests/golden/small_run.py) gives the leaderboard
recorded before the architecture change, value for value.

One deliberate change since the recording: set metrics (clip_i, dino, fid, ...) used to get
``ci_low == ci_high == mean`` (one value per group, nothing to resample); they now carry the
interval of their bootstrap replicates. Those columns are checked as intervals around the
recorded mean instead of against the recorded (collapsed) values."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.metrics.base import available_metrics

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))

from small_run import write_inputs  # noqa: E402


def test_small_run_matches_the_golden_leaderboard(tmp_path: Path) -> None:
    config = write_inputs(tmp_path)
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    golden = pd.read_csv(GOLDEN / "leaderboard_small.csv")
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert list(board["checkpoint"]) == list(golden["checkpoint"])
    missing = [c for c in golden.columns if c not in board.columns]
    assert not missing, missing
    for column in golden.columns:
        want, got = golden[column], board[column]
        if column.endswith((".ci_low", ".ci_high")) and _is_set_metric(column):
            _assert_interval_around_mean(board, column)
            continue
        if pd.api.types.is_numeric_dtype(want):
            # identical on this machine; the tolerance allows for another CPU's float rounding
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=column)
        else:
            assert list(got.fillna("")) == list(want.fillna("")), column


def _is_set_metric(column: str) -> bool:
    """Whether the column belongs to a set metric (one value per group)."""
    return available_metrics()[column.split(".", 1)[0]].kind == "set"


def _assert_interval_around_mean(board: pd.DataFrame, column: str) -> None:
    """A bootstrap interval brackets its mean and has width, or is blank (too few to resample)."""
    stem = column.rsplit(".", 1)[0]
    low, high, mean = board[f"{stem}.ci_low"], board[f"{stem}.ci_high"], board[stem]
    known = low.notna()
    assert (known == high.notna()).all(), stem
    assert (low[known] <= mean[known] + 1e-9).all(), stem
    assert (mean[known] <= high[known] + 1e-9).all(), stem
    assert (high[known] > low[known]).all(), stem

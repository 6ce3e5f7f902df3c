"""Golden table: the small end-to-end run (tests/golden/small_run.py) gives the leaderboard
recorded before the architecture change, value for value."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from t2i_bench.cli import app

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
        if pd.api.types.is_numeric_dtype(want):
            # identical on this machine; the tolerance allows for another CPU's float rounding
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=column)
        else:
            assert list(got.fillna("")) == list(want.fillna("")), column

"""The report stage: tables and the HTML report from what the store holds."""

from __future__ import annotations

from pathlib import Path

from t2i_bench.report.leaderboard import leaderboard, write_csv
from t2i_bench.report.tables import checkpoints_frame, scores_frame


def write_report(run) -> list[Path]:
    """Write ``leaderboard.csv`` and ``metrics.csv``; return the written paths."""
    root = run.config.output_dir
    scores = scores_frame(run.store, run.concepts)
    checkpoints = checkpoints_frame(run.store)
    checkpoints["file"] = checkpoints["file"].map(lambda p: Path(p).name if p else "")
    board = leaderboard(scores, checkpoints)
    paths = [root / "leaderboard.csv", root / "metrics.csv"]
    write_csv(board, paths[0])
    write_csv(scores, paths[1])
    return paths

"""Reserved column names: one home (t2i_bench/columns.py) that matches the tables written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from t2i_bench.analysis.aggregate import across_seeds, leaderboard_table, summarize
from t2i_bench.analysis.io import complete_configs
from t2i_bench.analysis.ranking import rank_scale
from t2i_bench.checkpoints import _METADATA_KEYS, _NETWORK_ARGS
from t2i_bench.columns import RESERVED, RUN_COLUMNS, hyperparameter_name_problem
from t2i_bench.report.tables import METRICS_COLUMNS


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = []
    for checkpoint in ("base", "a", "b", "c"):
        for prompt_type in ("trigger", "alter"):
            for item in range(3):
                value = rng.normal()
                rows.append((checkpoint, "zyx", "object", prompt_type, "clip_i", value, item))
    metrics = pd.DataFrame(
        rows, columns=["checkpoint", "concept", "category", "prompt_type", "metric", "value", "i"]
    )
    configs = pd.DataFrame(
        {
            "checkpoint": ["a", "b", "c"],
            "lr": [1e-4, 1e-3, 1e-4],
            "seed": [1.0, 2.0, 3.0],
            "epoch": [1.0, 1.0, 2.0],
        }
    )
    return metrics, complete_configs(configs)


def test_every_column_the_analysis_writes_is_reserved_or_a_hyperparameter() -> None:
    metrics, configs = _tables()
    hyper = {"lr", *RUN_COLUMNS}
    summary = summarize(metrics.drop(columns="i"), n_boot=50)
    board = leaderboard_table(summary, configs, {"clip_i": True})
    tables = [
        summary,
        board,
        rank_scale(summary, {"clip_i": True}),
        across_seeds(summary, configs),
        pd.DataFrame(columns=list(METRICS_COLUMNS)),
    ]
    for table in tables:
        for column in table.columns:
            is_metric_column = "." in column
            assert column in RESERVED or column in hyper or is_metric_column, column


@pytest.mark.parametrize(
    "name", ["checkpoint", "rank_score", "config_id", "value", "mean", "n", "log10_lr", "format"]
)
def test_reserved_names_are_refused(name: str) -> None:
    assert "writes itself" in hyperparameter_name_problem(name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("clip_i.trigger", "contains '.'"),
        ("vendi.alter.ci_low", "contains '.'"),
        ("=cmd", "starts with '='"),
        ("-lr", "starts with '-'"),
        (" lr", "surrounding spaces"),
        ("", "non-empty"),
    ],
)
def test_other_bad_names(name: str, problem: str) -> None:
    assert problem in hyperparameter_name_problem(name)


def test_names_read_from_metadata_and_training_coordinates_are_allowed() -> None:
    names = {*_METADATA_KEYS.values(), *_NETWORK_ARGS, "algo", *RUN_COLUMNS, "unet_lr"}
    assert all(hyperparameter_name_problem(n) is None for n in names)

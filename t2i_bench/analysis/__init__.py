"""Analysis stage of t2i-bench: aggregation, rank scaling, bootstrap CIs, CatBoost + SHAP.

Modules, one job each: ``io`` (read/validate/join/write tables), ``bootstrap`` (seeded
percentile bootstrap), ``aggregate`` (summaries, seed statistics, leaderboard, Pareto front),
``ranking`` (rank scaling), ``features`` (model inputs, configuration groups),
``importance`` (CatBoost + SHAP fits and files), ``importance_plots`` (the plots) and
``analyze`` (everything in one call). The formats are documented in ``docs/analysis.md``.
"""

from t2i_bench.analysis.aggregate import (
    across_seeds,
    checkpoint_table,
    leaderboard_table,
    metric_columns,
    pareto_front,
    summarize,
)
from t2i_bench.analysis.io import (
    attach_configs,
    read_configs_table,
    read_metrics_table,
    write_table,
)
from t2i_bench.analysis.ranking import check_directions, rank_scale

__all__ = [
    "across_seeds",
    "attach_configs",
    "check_directions",
    "checkpoint_table",
    "leaderboard_table",
    "metric_columns",
    "pareto_front",
    "rank_scale",
    "read_configs_table",
    "read_metrics_table",
    "summarize",
    "write_table",
]

"""The column names of the tables t2i-bench writes, in one place.

``leaderboard.csv``, ``metrics.csv``, ``checkpoints.csv`` and the ``analysis/`` tables use
these names; the config checks refuse a hyperparameter (from the config, a
``filename_pattern`` group or file metadata) that would take one of them, because it would
overwrite that column or rename rows.
"""

from __future__ import annotations

#: The row-name column of every per-checkpoint table, and the base model's row name.
CHECKPOINT = "checkpoint"
BASE_CHECKPOINT = "base"
#: Mean rank-scaled score over all metric x prompt type pairs.
RANK_SCORE = "rank_score"
#: Metric columns are ``{metric}{METRIC_SEPARATOR}{prompt_type}``, their CI bounds add a suffix.
METRIC_SEPARATOR = "."
CI_SUFFIXES = (".ci_low", ".ci_high")
#: Identifiers of a checkpoint row (not hyperparameters).
ID_COLUMNS = (CHECKPOINT, "run_id", "config_id", "file", "path")
#: Other per-checkpoint columns of ``checkpoints.csv`` that are not hyperparameters.
CHECKPOINT_INFO_COLUMNS = ("format", "multiplier")
#: The key columns of the long metrics table, its value, and its optional per-image columns.
METRIC_KEY_COLUMNS = (CHECKPOINT, "concept", "category", "prompt_type", "metric")
VALUE = "value"
PER_IMAGE_COLUMNS = ("image", "seed", "prompt")
#: A value's bootstrap interval, where it was computed with the value (set metrics).
INTERVALS = ("ci_low", "ci_high")
#: Columns the analysis adds: summaries, seed statistics, rank scores, derived features.
SUMMARY_COLUMNS = ("mean", "std", "n", "n_missing", "ci_low", "ci_high")
SEED_COLUMNS = ("n_seeds", "checkpoints")
RANK_COLUMNS = (RANK_SCORE, "n_concepts", "n_categories")
DERIVED_FEATURES = ("log10_lr",)
#: Hyperparameters that are coordinates of a training run; they are meant to be columns.
RUN_COLUMNS = ("seed", "epoch", "step")

#: Names no hyperparameter may take.
RESERVED = frozenset(
    {
        *ID_COLUMNS,
        *CHECKPOINT_INFO_COLUMNS,
        *METRIC_KEY_COLUMNS,
        VALUE,
        *PER_IMAGE_COLUMNS,
        *SUMMARY_COLUMNS,
        *SEED_COLUMNS,
        *RANK_COLUMNS,
        *DERIVED_FEATURES,
    }
    - set(RUN_COLUMNS)
)


def hyperparameter_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a hyperparameter (a column of the leaderboard), or None."""
    if not isinstance(name, str) or not name.strip():
        return f"hyperparameter name {name!r} must be a non-empty string"
    if name != name.strip() or not name.isprintable():
        return f"hyperparameter name {name!r} has surrounding spaces or control characters"
    if name[0] in "=+-@'":
        return (
            f"hyperparameter name {name!r} starts with {name[0]!r}, which a spreadsheet reads "
            "as a formula; rename it"
        )
    if name in RESERVED:
        return (
            f"hyperparameter name {name!r} is a column t2i-bench writes itself; rename it "
            f"(reserved: {', '.join(sorted(RESERVED))})"
        )
    if METRIC_SEPARATOR in name:
        return (
            f"hyperparameter name {name!r} contains {METRIC_SEPARATOR!r}, which the leaderboard "
            "uses for metric columns (e.g. clip_i.trigger); rename it"
        )
    return None

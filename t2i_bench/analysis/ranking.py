"""Rank scaling to [0, 1] (the LyCORIS paper's normalisation) and metric directions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

#: Score given when a (metric, concept, prompt type) group has a single checkpoint.
SINGLE_CHECKPOINT_SCORE = 0.5


def check_directions(metrics: Iterable[str], higher_is_better: Mapping[str, bool]) -> list[str]:
    """One warning per metric with no declared direction (it is treated as higher-is-better)."""
    unknown = sorted(set(metrics) - set(higher_is_better))
    return [f"metric {m!r} has no declared direction; assuming higher is better" for m in unknown]


def resolve_directions(
    metrics: Iterable[str], higher_is_better: Mapping[str, bool]
) -> dict[str, bool]:
    """Direction of every metric in ``metrics``; unknown ones default to higher-is-better."""
    return {m: bool(higher_is_better.get(m, True)) for m in set(metrics)}


def scaled_ranks(summary: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> pd.Series:
    """Per summary row, the rank of its mean within (metric, concept, prompt type), in [0, 1].

    1 is the best checkpoint and 0 the worst whatever the metric's direction; ties get the
    average rank; NaN means stay NaN and are not counted; a group with a single value gets
    :data:`SINGLE_CHECKPOINT_SCORE`.
    """
    directions = resolve_directions(summary["metric"], higher_is_better)
    sign = summary["metric"].map(directions).map({True: 1.0, False: -1.0}).astype("float64")
    oriented = summary["mean"].astype("float64") * sign
    keys = [summary["metric"], summary["concept"], summary["prompt_type"]]
    ranks = oriented.groupby(keys).rank(method="average", na_option="keep")
    counts = oriented.groupby(keys).transform("count")
    scaled = (ranks - 1.0) / (counts - 1.0)
    single = counts.eq(1) & oriented.notna()
    return scaled.where(~single, SINGLE_CHECKPOINT_SCORE).astype("float64")


def rank_scale(summary: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> pd.DataFrame:
    """Rank-scaled scores per checkpoint × prompt type × metric, 1 = best.

    Scores are ranked within (metric, concept, prompt type) over all checkpoints in
    ``summary`` (see :func:`scaled_ranks`), averaged over the concepts of each category, then
    over categories. Columns: checkpoint, prompt_type, metric, rank_score, n_concepts,
    n_categories. ``result.attrs["warnings"]`` lists metrics with no declared direction.
    """
    frame = summary[["checkpoint", "concept", "category", "prompt_type", "metric"]].copy()
    frame["scaled"] = scaled_ranks(summary, higher_is_better)
    frame = frame[frame["scaled"].notna()]
    per_category = (
        frame.groupby(["checkpoint", "category", "prompt_type", "metric"], sort=True)
        .agg(scaled=("scaled", "mean"), n_concepts=("concept", "nunique"))
        .reset_index()
    )
    result = (
        per_category.groupby(["checkpoint", "prompt_type", "metric"], sort=True)
        .agg(
            rank_score=("scaled", "mean"),
            n_concepts=("n_concepts", "sum"),
            n_categories=("category", "nunique"),
        )
        .reset_index()
    )
    result.attrs["warnings"] = check_directions(summary["metric"].unique(), higher_is_better)
    return result


def overall_rank_score(rank_scores: pd.DataFrame) -> pd.Series:
    """Mean rank score over all (metric, prompt type) pairs, per checkpoint."""
    return rank_scores.groupby("checkpoint", sort=True)["rank_score"].mean().rename("rank_score")

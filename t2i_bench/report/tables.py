"""Tables read from the store: metric values, rendered images and checkpoints."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_bench.analysis.bootstrap import replicate_interval
from t2i_bench.columns import INTERVALS, METRIC_KEY_COLUMNS, PER_IMAGE_COLUMNS, VALUE
from t2i_bench.concepts import Concept
from t2i_bench.metrics.base import SET_ITEM
from t2i_bench.store import RunStore

HYPERPARAMETER_ORDER = ("algo", "preset", "lr", "dim", "alpha", "factor", "epoch", "step", "seed")
#: Columns of ``metrics.csv``: the long format of docs/analysis.md plus per-image columns.
METRICS_COLUMNS = (*METRIC_KEY_COLUMNS, VALUE, *PER_IMAGE_COLUMNS, *INTERVALS)
#: Columns of ``scores.parquet``.
SCORES_COLUMNS = (
    *METRIC_KEY_COLUMNS[:4],
    "prompt",
    "seed",
    "image",
    "metric",
    "kind",
    VALUE,
    *INTERVALS,
)
#: (metric, checkpoint, concept, prompt_type) -> a set value's bootstrap replicates.
Replicates = dict[tuple[str, str, str, str], np.ndarray]


def scores_frame(store: RunStore, concepts: list[Concept]) -> pd.DataFrame:
    """One row per current stored value: checkpoint, concept, category, prompt_type, metric,
    item, value.

    Values that no longer describe the plan are left out: those of a group whose last scoring
    failed (its stored values are from older inputs), and set values of a group with no
    rendered image in the current plan (e.g. a checkpoint file replaced by one that fails to
    load: its images have new keys, and the old file's values must not survive).
    """
    category = {c.name: c.category for c in concepts}
    frame = store.scores_frame()
    frame.insert(2, "category", frame["concept"].map(category))
    return frame


def images_frame(store: RunStore) -> pd.DataFrame:
    """One row per planned image of the plan's own prompts (image variants that metrics
    asked for are left out): checkpoint, concept, prompt_type, template, prompt, seed,
    image_key and ``image`` (path relative to the run dir; empty when not rendered, or when
    its PNG is missing or altered: ``RunStore.unusable_images``)."""
    frame = store.jobs_frame()
    own = frame[frame["variant"].eq("")].drop(columns="variant").reset_index(drop=True)
    own.loc[own["image_key"].isin(set(store.unusable_images())), "image"] = ""
    return own


def select_scores(
    scores: pd.DataFrame,
    metrics: Iterable[str],
    concepts: Iterable[str],
    prompt_types: Iterable[str],
) -> pd.DataFrame:
    """Only the values of the configured metrics, concepts and prompt types."""
    keep = (
        scores["metric"].isin(list(metrics))
        & scores["concept"].isin(list(concepts))
        & scores["prompt_type"].isin(list(prompt_types))
    )
    return scores[keep].reset_index(drop=True)


def per_image_scores(
    scores: pd.DataFrame, images: pd.DataFrame, replicates: Replicates | None = None
) -> pd.DataFrame:
    """Every value with its image, prompt and seed (empty for set metrics): ``scores.parquet``.

    Per-image values whose image is no longer planned are dropped; set values are kept, with
    the 95% interval of their bootstrap replicates (``ci_low``, ``ci_high``; empty for
    per-image values, whose interval the analysis bootstraps from the values themselves).
    """
    keys = ["checkpoint", "concept", "prompt_type"]
    lookup = images.drop_duplicates([*keys, "image_key"])[
        [*keys, "image_key", "prompt", "seed", "image"]
    ].rename(columns={"image_key": "item"})
    joined = scores.merge(lookup, on=[*keys, "item"], how="left")
    is_set = joined["item"].eq(SET_ITEM)
    joined = joined[is_set | joined["image"].notna()].copy()
    joined["kind"] = is_set[joined.index].map({True: "set", False: "image"})
    joined["seed"] = joined["seed"].astype("Int64")
    for col in ("prompt", "image"):
        joined[col] = joined[col].fillna("")
    joined[["ci_low", "ci_high"]] = _set_intervals(joined, replicates or {})
    return joined[list(SCORES_COLUMNS)].reset_index(drop=True)


def _set_intervals(rows: pd.DataFrame, replicates: Replicates) -> np.ndarray:
    """(n, 2) interval of each set row's replicates (NaN for per-image rows)."""
    out = np.full((len(rows), 2), np.nan)
    for i, row in enumerate(rows.itertuples(index=False)):
        reps = replicates.get((row.metric, row.checkpoint, row.concept, row.prompt_type))
        if row.kind == "set" and reps is not None and pd.notna(row.value):
            out[i] = replicate_interval(float(row.value), reps)
    return out


def metrics_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """The long ``metrics.csv`` table (docs/analysis.md): one value per row."""
    return per_image[list(METRICS_COLUMNS)].copy()


def checkpoints_frame(store: RunStore) -> pd.DataFrame:
    """One row per checkpoint: name, hyperparameters, multiplier, grouping ids, file name."""
    records = []
    for row in store.checkpoint_rows():
        record = {"checkpoint": row["name"], **row["hyperparameters"]}
        record.update(
            format=row["format"],
            multiplier=row["multiplier"],
            run_id=row["run_id"],
            config_id=row["config_id"],
            file=Path(row["path"]).name if row["path"] else "",
        )
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    first = ["checkpoint", *[c for c in HYPERPARAMETER_ORDER if c in frame.columns]]
    last = ["format", "multiplier", "run_id", "config_id", "file"]
    middle = sorted(c for c in frame.columns if c not in first and c not in last)
    return _whole_numbers_as_int(frame[first + middle + last])


def _whole_numbers_as_int(frame: pd.DataFrame) -> pd.DataFrame:
    """Float columns holding only whole numbers (and blanks) as nullable integers."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
            out[col] = values.astype("Int64")
    return out

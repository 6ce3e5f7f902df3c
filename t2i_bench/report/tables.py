"""Tables read from the store: metric values, rendered images and checkpoints."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from t2i_bench.columns import METRIC_KEY_COLUMNS, PER_IMAGE_COLUMNS, VALUE
from t2i_bench.concepts import Concept
from t2i_bench.hashing import bytes_sha256
from t2i_bench.metrics.base import SET_ITEM
from t2i_bench.store import RunStore

HYPERPARAMETER_ORDER = ("algo", "preset", "lr", "dim", "alpha", "factor", "epoch", "step", "seed")
#: Columns of ``metrics.csv``: the long format of docs/analysis.md plus per-image columns.
METRICS_COLUMNS = (*METRIC_KEY_COLUMNS, VALUE, *PER_IMAGE_COLUMNS)
#: Columns of ``scores.parquet``.
SCORES_COLUMNS = (*METRIC_KEY_COLUMNS[:4], "prompt", "seed", "image", "metric", "kind", VALUE)


def scores_frame(store: RunStore, concepts: list[Concept]) -> pd.DataFrame:
    """One row per current stored value: checkpoint, concept, category, prompt_type, metric,
    item, value.

    Values that no longer describe the plan are left out: those of a group whose last scoring
    failed (its stored values are from older inputs), and set values of a group with no
    rendered image in the current plan (e.g. a checkpoint file replaced by one that fails to
    load: its images have new keys, and the old file's values must not survive).
    """
    category = {c.name: c.category for c in concepts}
    frame = pd.read_sql_query(
        "SELECT s.checkpoint, s.concept, s.prompt_type, s.metric, s.item, s.value "
        "FROM scores s JOIN checkpoints c ON c.name = s.checkpoint "
        "WHERE NOT EXISTS (SELECT 1 FROM failures f WHERE f.stage = 'score' AND f.item = "
        # the failure item of a group, as metrics/score.py records it
        "  s.metric || '/' || s.checkpoint || '/' || s.concept || '/' || s.prompt_type) "
        "AND (s.item != :set_item OR EXISTS (SELECT 1 FROM jobs j "
        "  JOIN images i ON i.image_key = j.image_key WHERE j.checkpoint = s.checkpoint "
        "  AND j.concept = s.concept AND j.prompt_type = s.prompt_type)) "
        "ORDER BY c.position, s.concept, s.prompt_type, s.metric, s.item",
        store.conn,
        params={"set_item": SET_ITEM},
    )
    frame.insert(2, "category", frame["concept"].map(category))
    return frame


def unusable_images(store: RunStore) -> list[str]:
    """Keys of recorded images whose PNG is gone, not a file, or altered since it was written
    (hashed only when its mtime is after the row's creation, so a report stays cheap; a copy
    that keeps an older mtime, ``cp -p``, is caught by ``run``, which hashes every PNG)."""
    rows = store.conn.execute(
        "SELECT image_key, relpath, sha256, created_at FROM images ORDER BY relpath"
    )
    bad = []
    for key, rel, sha, created in rows:
        path = store.root / rel
        try:
            info = path.stat()
        except OSError:
            bad.append(key)
            continue
        if not stat.S_ISREG(info.st_mode):
            bad.append(key)
        elif info.st_mtime > created and bytes_sha256(path.read_bytes()) != sha:
            bad.append(key)
    return bad


def images_frame(store: RunStore) -> pd.DataFrame:
    """One row per planned image: checkpoint, concept, prompt_type, template, prompt, seed,
    image_key and ``image`` (path relative to the run dir; empty when not rendered, or when
    its PNG is missing or altered: :func:`unusable_images`)."""
    frame = pd.read_sql_query(
        "SELECT j.checkpoint, j.concept, j.prompt_type, j.template, j.prompt, j.seed, "
        "j.image_key, COALESCE(i.relpath, '') AS image "
        "FROM jobs j JOIN checkpoints c ON c.name = j.checkpoint "
        "LEFT JOIN images i ON i.image_key = j.image_key "
        "ORDER BY c.position, j.concept, j.prompt_type, j.template, j.seed",
        store.conn,
    )
    frame["image"] = frame["image"].map(lambda p: Path(p).as_posix() if p else "")
    frame.loc[frame["image_key"].isin(set(unusable_images(store))), "image"] = ""
    return frame


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


def per_image_scores(scores: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Every value with its image, prompt and seed (empty for set metrics): ``scores.parquet``.

    Per-image values whose image is no longer planned are dropped; set values are kept.
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
    return joined[list(SCORES_COLUMNS)].reset_index(drop=True)


def metrics_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """The long ``metrics.csv`` table (docs/analysis.md): one value per row."""
    return per_image[list(METRICS_COLUMNS)].copy()


def checkpoints_frame(store: RunStore) -> pd.DataFrame:
    """One row per checkpoint: name, hyperparameters, multiplier, grouping ids, file name."""
    rows = store.conn.execute(
        "SELECT name, path, format, multiplier, hyperparameters, run_id, config_id "
        "FROM checkpoints ORDER BY position"
    ).fetchall()
    records = []
    for name, path, fmt, multiplier, hyper, run_id, config_id in rows:
        record = {"checkpoint": name, **json.loads(hyper)}
        record.update(
            format=fmt,
            multiplier=multiplier,
            run_id=run_id,
            config_id=config_id,
            file=Path(path).name if path else "",
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

"""Tables read from the store: long-format scores and the checkpoint table."""

from __future__ import annotations

import json

import pandas as pd

from t2i_bench.concepts import Concept
from t2i_bench.store import RunStore

HYPERPARAMETER_ORDER = ("algo", "preset", "lr", "dim", "alpha", "factor", "epoch", "step", "seed")


def scores_frame(store: RunStore, concepts: list[Concept]) -> pd.DataFrame:
    """One row per stored value: checkpoint, concept, category, prompt_type, metric, item, value."""
    category = {c.name: c.category for c in concepts}
    frame = pd.read_sql_query(
        "SELECT s.checkpoint, s.concept, s.prompt_type, s.metric, s.item, s.value "
        "FROM scores s JOIN checkpoints c ON c.name = s.checkpoint "
        "ORDER BY c.position, s.concept, s.prompt_type, s.metric, s.item",
        store.conn,
    )
    frame.insert(2, "category", frame["concept"].map(category))
    return frame


def checkpoints_frame(store: RunStore) -> pd.DataFrame:
    """One row per checkpoint: name, hyperparameters, multiplier, grouping ids, file."""
    rows = store.conn.execute(
        "SELECT name, path, format, multiplier, hyperparameters, run_id, config_id "
        "FROM checkpoints ORDER BY position"
    ).fetchall()
    records = []
    for name, path, fmt, multiplier, hyper, run_id, config_id in rows:
        record = {"checkpoint": name, **json.loads(hyper)}
        record.update(
            format=fmt, multiplier=multiplier, run_id=run_id, config_id=config_id, file=path or ""
        )
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    first = ["checkpoint", *[c for c in HYPERPARAMETER_ORDER if c in frame.columns]]
    last = ["format", "multiplier", "run_id", "config_id", "file"]
    middle = sorted(c for c in frame.columns if c not in first and c not in last)
    return frame[first + middle + last]

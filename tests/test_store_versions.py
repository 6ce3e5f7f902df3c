"""The run folder's format version: old folders are migrated, newer ones refused in one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from t2i_bench.errors import BenchError
from t2i_bench.store import SCHEMA_VERSION, RunStore

#: The schema t2i-bench 0.1 wrote (store version 1, no user_version), as it was.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE checkpoints (
    name TEXT PRIMARY KEY, path TEXT, multiplier REAL, file_hash TEXT,
    hyperparameters TEXT NOT NULL, sources TEXT NOT NULL, run_id TEXT, config_id TEXT,
    position INTEGER NOT NULL, format TEXT NOT NULL, token TEXT);
CREATE TABLE jobs (
    checkpoint TEXT NOT NULL, concept TEXT NOT NULL, prompt_type TEXT NOT NULL,
    template TEXT NOT NULL, prompt TEXT NOT NULL, seed INTEGER NOT NULL,
    image_key TEXT NOT NULL, PRIMARY KEY (checkpoint, concept, prompt_type, template, seed));
CREATE TABLE images (
    image_key TEXT PRIMARY KEY, relpath TEXT NOT NULL, sha256 TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE embeddings (
    sha256 TEXT NOT NULL, backbone TEXT NOT NULL, vector BLOB NOT NULL, dim INTEGER NOT NULL,
    PRIMARY KEY (sha256, backbone));
CREATE TABLE text_embeddings (
    text TEXT NOT NULL, backbone TEXT NOT NULL, vector BLOB NOT NULL, dim INTEGER NOT NULL,
    PRIMARY KEY (text, backbone));
CREATE TABLE scores (
    metric TEXT NOT NULL, checkpoint TEXT NOT NULL, concept TEXT NOT NULL,
    prompt_type TEXT NOT NULL, item TEXT NOT NULL, value REAL, identity TEXT NOT NULL,
    PRIMARY KEY (metric, checkpoint, concept, prompt_type, item));
CREATE TABLE baselines (
    metric TEXT NOT NULL, concept TEXT NOT NULL, value REAL, PRIMARY KEY (metric, concept));
CREATE TABLE failures (
    stage TEXT NOT NULL, item TEXT NOT NULL, error TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (stage, item));
"""


def _v1_folder(root: Path) -> Path:
    root.mkdir()
    conn = sqlite3.connect(root / "run.sqlite")
    conn.executescript(V1_SCHEMA)
    vector = np.arange(4, dtype=np.float32).tobytes()
    conn.execute("INSERT INTO embeddings VALUES ('sha', 'clip|tiny', ?, 4)", (vector,))
    conn.execute("INSERT INTO jobs VALUES ('base', 'c', 'trigger', '{}', 'x', 0, 'k')")
    conn.execute("INSERT INTO scores VALUES ('clip_i', 'base', 'c', 'trigger', '*', 0.5, 'id')")
    conn.commit()
    conn.close()
    return root


def test_a_version_1_folder_is_migrated_in_place(tmp_path: Path) -> None:
    store = RunStore(_v1_folder(tmp_path / "old"))
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    columns = [r[1] for r in store.conn.execute("PRAGMA table_info(jobs)")]
    assert "variant" in columns  # the plan rewrites jobs on every run: recreated empty
    assert store.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert np.array_equal(store.get_embeddings("clip|tiny", ["sha"])[0], np.arange(4))
    assert store.score_identities() == {("clip_i", "base", "c", "trigger"): "id"}
    store.close()
    again = RunStore(tmp_path / "old")  # opening a current folder changes nothing
    assert again.score_identities() == {("clip_i", "base", "c", "trigger"): "id"}


def test_a_folder_from_a_newer_version_is_refused_in_one_line(tmp_path: Path) -> None:
    RunStore(tmp_path / "new").close()
    conn = sqlite3.connect(tmp_path / "new" / "run.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(BenchError) as info:
        RunStore(tmp_path / "new")
    message = str(info.value)
    assert "\n" not in message and "run.sqlite" in message
    assert f"store version {SCHEMA_VERSION + 1}" in message and "upgrade t2i-bench" in message

"""The run store: ``run.sqlite`` (WAL) plus content-addressed PNGs under ``images/``.

One writer (the driver). Every file is written to a temporary name and renamed, and every
row is committed right after its file exists, so a kill loses at most the item in flight.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import socket
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from t2i_bench import faults
from t2i_bench.errors import BenchError
from t2i_bench.hashing import bytes_sha256
from t2i_bench.images import open_rgb

#: The item of a set metric's single value.
SET_ITEM = "*"


def score_item(metric: str, checkpoint: str, concept: str, prompt_type: str) -> str:
    """How a metric group is named in failures and notes (scores_frame matches it in SQL)."""
    return f"{metric}/{checkpoint}/{concept}/{prompt_type}"


#: Version of the run folder's format (``PRAGMA user_version`` of run.sqlite). Bump it with
#: every change to SCHEMA and add the step that migrates the previous version to MIGRATIONS.
SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, path TEXT, multiplier REAL, file_hash TEXT,
    hyperparameters TEXT NOT NULL, sources TEXT NOT NULL, run_id TEXT, config_id TEXT,
    position INTEGER NOT NULL, format TEXT NOT NULL, token TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    checkpoint TEXT NOT NULL, concept TEXT NOT NULL, prompt_type TEXT NOT NULL,
    variant TEXT NOT NULL, template TEXT NOT NULL, prompt TEXT NOT NULL, seed INTEGER NOT NULL,
    image_key TEXT NOT NULL,
    PRIMARY KEY (checkpoint, concept, prompt_type, variant, template, seed)
);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (image_key);
CREATE TABLE IF NOT EXISTS images (
    image_key TEXT PRIMARY KEY, relpath TEXT NOT NULL, sha256 TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    sha256 TEXT NOT NULL, backbone TEXT NOT NULL, vector BLOB NOT NULL, dim INTEGER NOT NULL,
    dtype TEXT NOT NULL DEFAULT 'float32',
    PRIMARY KEY (sha256, backbone)
);
CREATE TABLE IF NOT EXISTS text_embeddings (
    text TEXT NOT NULL, backbone TEXT NOT NULL, vector BLOB NOT NULL, dim INTEGER NOT NULL,
    PRIMARY KEY (text, backbone)
);
CREATE TABLE IF NOT EXISTS scores (
    metric TEXT NOT NULL, checkpoint TEXT NOT NULL, concept TEXT NOT NULL,
    prompt_type TEXT NOT NULL, item TEXT NOT NULL, value REAL, identity TEXT NOT NULL,
    PRIMARY KEY (metric, checkpoint, concept, prompt_type, item)
);
CREATE TABLE IF NOT EXISTS score_replicates (
    metric TEXT NOT NULL, checkpoint TEXT NOT NULL, concept TEXT NOT NULL,
    prompt_type TEXT NOT NULL, identity TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (metric, checkpoint, concept, prompt_type)
);
CREATE TABLE IF NOT EXISTS baselines (
    metric TEXT NOT NULL, concept TEXT NOT NULL, value REAL, PRIMARY KEY (metric, concept)
);
CREATE TABLE IF NOT EXISTS failures (
    stage TEXT NOT NULL, item TEXT NOT NULL, error TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (stage, item)
);
"""

#: from-version -> SQL that brings a run folder of that version to the next one.
MIGRATIONS = {
    # v1 (t2i-bench 0.1, no user_version): jobs gain a variant column (the plan rewrites the
    # table on every run, so it is recreated empty); embeddings record their dtype. Images
    # keyed without the device are no longer planned and are rendered again.
    1: """
DROP TABLE IF EXISTS jobs;
ALTER TABLE embeddings ADD COLUMN dtype TEXT NOT NULL DEFAULT 'float32';
""",
    # v2: set metrics store their bootstrap replicates (score_replicates, created by SCHEMA);
    # their stored values' identities changed, so they are scored again once.
    2: "",
}


@dataclass(frozen=True)
class RenderedJob:
    """A planned job whose image is in the store."""

    checkpoint: str
    concept: str
    prompt_type: str
    variant: str
    template: str
    prompt: str
    seed: int
    image_key: str
    sha256: str
    relpath: str


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def png_bytes(image: Image.Image) -> bytes:
    """Deterministic PNG encoding (no timestamps or text chunks)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


class RunLock:
    """An exclusive lock on a run folder, held while a run writes to it.

    ``flock`` is released by the OS when its process dies, even by SIGKILL, so a lock left by
    a dead run is taken over; the file only records who held it, for messages."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "run.lock"
        self.handle = None
        self.took_over: str | None = None

    def acquire(self) -> RunLock:
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the run's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise BenchError(
                f"in use by another t2i-bench run ({holder}); wait for it to finish "
                "or choose another --output",
                self.path.parent,
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        self.took_over = previous or None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}")
        handle.flush()
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.flush()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class RunStore:
    """A run folder: the SQLite database and the images it points to."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "run.sqlite"
        try:
            self.conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._upgrade()
        except sqlite3.DatabaseError as exc:
            raise BenchError(
                f"not a readable t2i-bench store ({exc}); move it away or choose another --output",
                self.db_path,
            ) from None

    def _upgrade(self) -> None:
        """Create a new store, or migrate an older one to SCHEMA_VERSION, in one transaction."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        if version == 0 and tables.fetchone()[0] > 0:
            version = 1  # written by t2i-bench 0.1, before versions were recorded
        if version > SCHEMA_VERSION:
            raise BenchError(
                f"written by a newer t2i-bench (store version {version}, this one reads up to "
                f"{SCHEMA_VERSION}); upgrade t2i-bench or choose another --output",
                self.db_path,
            )
        if version == SCHEMA_VERSION:
            return
        script = "".join(MIGRATIONS[v] for v in range(max(version, 1), SCHEMA_VERSION))
        if version == 0:
            script = ""
        self.conn.executescript(
            f"BEGIN IMMEDIATE;{script}{SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
        )

    def close(self) -> None:
        self.conn.close()

    def lock(self) -> RunLock:
        """Take the run folder's lock (a one-line BenchError while another run holds it)."""
        return RunLock(self.root).acquire()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta and provenance -------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True))
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # -- plan ----------------------------------------------------------------------------
    def write_plan(self, checkpoints: Iterable[Any], jobs: Iterable[Any]) -> None:
        """Record checkpoints and jobs; re-running with the same plan writes nothing new."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM checkpoints")
            for position, ckpt in enumerate(checkpoints):
                conn.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ckpt.name,
                        str(ckpt.path) if ckpt.path else None,
                        ckpt.multiplier,
                        ckpt.file_hash,
                        json.dumps(ckpt.hyperparameters, sort_keys=True),
                        json.dumps(ckpt.sources, sort_keys=True),
                        ckpt.run_id,
                        ckpt.config_id,
                        position,
                        ckpt.format,
                        ckpt.token,
                    ),
                )
            conn.execute("DELETE FROM jobs")
            conn.executemany(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        j.checkpoint,
                        j.concept,
                        j.prompt_type,
                        j.variant,
                        j.template,
                        j.prompt,
                        j.seed,
                        j.key,
                    )
                    for j in jobs
                ],
            )

    def checkpoint_rows(self) -> list[dict[str, Any]]:
        """The planned checkpoints in leaderboard order, hyperparameters decoded."""
        rows = self.conn.execute(
            "SELECT name, path, format, multiplier, hyperparameters, run_id, config_id "
            "FROM checkpoints ORDER BY position"
        )
        return [
            {
                "name": name,
                "path": path,
                "format": fmt,
                "multiplier": multiplier,
                "hyperparameters": json.loads(hyper),
                "run_id": run_id,
                "config_id": config_id,
            }
            for name, path, fmt, multiplier, hyper, run_id, config_id in rows
        ]

    def rendered_jobs(self) -> list[RenderedJob]:
        """Every planned job whose image is stored, in a stable order (checkpoint position,
        concept, prompt type, variant, template, seed)."""
        rows = self.conn.execute(
            "SELECT j.checkpoint, j.concept, j.prompt_type, j.variant, j.template, j.prompt, "
            "j.seed, j.image_key, i.sha256, i.relpath FROM jobs j "
            "JOIN images i ON i.image_key = j.image_key "
            "JOIN checkpoints c ON c.name = j.checkpoint "
            "ORDER BY c.position, j.concept, j.prompt_type, j.variant, j.template, j.seed"
        )
        return [RenderedJob(*row) for row in rows]

    def jobs_frame(self) -> pd.DataFrame:
        """One row per planned job: checkpoint, concept, prompt_type, variant, template,
        prompt, seed, image_key and ``image`` (relative path; empty when not rendered)."""
        frame = pd.read_sql_query(
            "SELECT j.checkpoint, j.concept, j.prompt_type, j.variant, j.template, j.prompt, "
            "j.seed, j.image_key, COALESCE(i.relpath, '') AS image "
            "FROM jobs j JOIN checkpoints c ON c.name = j.checkpoint "
            "LEFT JOIN images i ON i.image_key = j.image_key "
            "ORDER BY c.position, j.concept, j.prompt_type, j.variant, j.template, j.seed",
            self.conn,
        )
        frame["image"] = frame["image"].map(lambda p: Path(p).as_posix() if p else "")
        return frame

    # -- images --------------------------------------------------------------------------
    def image_path(self, key: str) -> Path:
        return self.root / "images" / key[:2] / f"{key}.png"

    def existing_images(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT image_key FROM images")}

    def put_image(self, key: str, image: Image.Image) -> str:
        """Write the image as PNG atomically, then its row; returns the PNG's sha256."""
        return self.put_png(key, png_bytes(image))

    def put_png(self, key: str, data: bytes) -> str:
        """Write encoded PNG bytes atomically, then their row; returns their sha256."""
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        path = self.image_path(key)
        atomic_write_bytes(path, data)
        sha = bytes_sha256(data)
        self.conn.execute(
            "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)",
            (key, str(path.relative_to(self.root)), sha, width, height, time.time()),
        )
        faults.checkpoint("image")
        return sha

    def image_rows(self) -> dict[str, tuple[str, str]]:
        """image_key -> (relative path, sha256)."""
        return {key: (rel, sha) for key, rel, sha, _, _ in self.image_records()}

    def image_records(self) -> list[tuple[str, str, str, int, int]]:
        """Every image row as (image_key, relative path, sha256, width, height), by key."""
        return self.conn.execute(
            "SELECT image_key, relpath, sha256, width, height FROM images ORDER BY image_key"
        ).fetchall()

    def verify_images(self) -> list[str]:
        """Drop rows whose PNG is missing or altered (e.g. after a crash) and temporary files
        a killed write left behind; return the dropped keys."""
        for leftover in (self.root / "images").glob("*/.*.tmp"):
            leftover.unlink(missing_ok=True)
        bad = []
        for key, (rel, sha) in self.image_rows().items():
            path = self.root / rel
            if not path.is_file() or bytes_sha256(path.read_bytes()) != sha:
                bad.append(key)
        if bad:
            with self.transaction() as conn:
                conn.executemany("DELETE FROM images WHERE image_key = ?", [(k,) for k in bad])
        return bad

    def load_image(self, key: str) -> Image.Image:
        return open_rgb(self.image_path(key))

    # -- embeddings ----------------------------------------------------------------------
    def embedded(self, backbone: str) -> set[str]:
        rows = self.conn.execute("SELECT sha256 FROM embeddings WHERE backbone = ?", (backbone,))
        return {row[0] for row in rows}

    def put_embeddings(
        self, backbone: str, items: dict[str, np.ndarray], dtype: str = "float32"
    ) -> None:
        """Store image embeddings (sha -> vector) as ``dtype`` (float32 or float16)."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)",
                [
                    (sha, backbone, _blob(v, dtype), int(v.shape[-1]), dtype)
                    for sha, v in items.items()
                ],
            )
        faults.checkpoint("embedding")

    def get_embeddings(self, backbone: str, shas: list[str]) -> np.ndarray:
        """An (n, d) array in the order of ``shas``; every sha must be embedded."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(shas), 500):
            chunk = shas[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                "SELECT sha256, vector, dtype FROM embeddings "
                f"WHERE backbone = ? AND sha256 IN ({marks})",
                (backbone, *chunk),
            )
            for sha, blob, kind in rows:
                found[sha] = np.frombuffer(blob, dtype=kind).astype(np.float32, copy=False)
        missing = [s for s in shas if s not in found]
        if missing:
            raise KeyError(f"{len(missing)} images have no {backbone} embedding")
        return np.stack([found[s] for s in shas]) if shas else np.zeros((0, 0), np.float32)

    def delete_embeddings(self, backbone: str, shas: Iterable[str]) -> int:
        """Drop the image embeddings of ``shas`` for ``backbone``; returns how many."""
        keys = [(backbone, sha) for sha in shas]
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM embeddings WHERE backbone = ? AND sha256 = ?", keys)
            return conn.total_changes - before

    def reclaim_space(self, min_bytes: int = 64 << 20) -> int:
        """Give the database file's free pages back to the disk (VACUUM) when they hold at
        least ``min_bytes``; returns the bytes freed."""
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size
        if free < min_bytes:
            return 0
        self.conn.execute("VACUUM")
        return free

    def text_embedded(self, backbone: str) -> set[str]:
        rows = self.conn.execute("SELECT text FROM text_embeddings WHERE backbone = ?", (backbone,))
        return {row[0] for row in rows}

    def put_text_embeddings(self, backbone: str, items: dict[str, np.ndarray]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO text_embeddings VALUES (?, ?, ?, ?)",
                [
                    (t, backbone, np.asarray(v, dtype=np.float32).tobytes(), int(v.shape[-1]))
                    for t, v in items.items()
                ],
            )

    def get_text_embeddings(self, backbone: str, texts: list[str]) -> np.ndarray:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(texts), 500):
            chunk = list(dict.fromkeys(texts[start : start + 500]))
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                "SELECT text, vector FROM text_embeddings "
                f"WHERE backbone = ? AND text IN ({marks})",
                (backbone, *chunk),
            )
            found.update({t: np.frombuffer(blob, dtype=np.float32) for t, blob in rows})
        return np.stack([found[t] for t in texts])

    # -- scores --------------------------------------------------------------------------
    def score_identities(self) -> dict[tuple[str, str, str, str], str]:
        """(metric, checkpoint, concept, prompt_type) -> identity of the stored values."""
        rows = self.conn.execute(
            "SELECT DISTINCT metric, checkpoint, concept, prompt_type, identity FROM scores"
        )
        return {(m, c, k, p): ident for m, c, k, p, ident in rows}

    def put_scores(
        self,
        metric: str,
        checkpoint: str,
        concept: str,
        prompt_type: str,
        identity: str,
        values: dict[str, float],
        replicates: np.ndarray | None = None,
    ) -> None:
        """Replace one group's values (item -> value) and a set metric's bootstrap
        replicates (float64, NaN kept) atomically, under one identity."""
        key = (metric, checkpoint, concept, prompt_type)
        with self.transaction() as conn:
            for table in ("scores", "score_replicates"):
                conn.execute(
                    f"DELETE FROM {table} "
                    "WHERE metric = ? AND checkpoint = ? AND concept = ? AND prompt_type = ?",
                    key,
                )
            conn.executemany(
                "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*key, item, _finite(v), identity) for item, v in values.items()],
            )
            if replicates is not None:
                blob = np.ascontiguousarray(replicates, dtype="<f8").tobytes()
                conn.execute(
                    "INSERT INTO score_replicates VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, identity, blob),
                )
        faults.checkpoint("score")

    def delete_scores(self, keys: Iterable[tuple[str, str, str, str]]) -> None:
        """Remove the values of these (metric, checkpoint, concept, prompt_type) groups."""
        keys = list(keys)
        with self.transaction() as conn:
            for table in ("scores", "score_replicates"):
                conn.executemany(
                    f"DELETE FROM {table} "
                    "WHERE metric = ? AND checkpoint = ? AND concept = ? AND prompt_type = ?",
                    keys,
                )

    def scores_frame(self) -> pd.DataFrame:
        """The stored values the current plan still justifies: checkpoint, concept,
        prompt_type, metric, item, value, in leaderboard order. Left out: groups whose last
        scoring failed, and set values of groups with no rendered image in the plan (a
        checkpoint that now fails to load; the score stage removes them, this keeps a
        report run before it honest too)."""
        return pd.read_sql_query(
            "SELECT s.checkpoint, s.concept, s.prompt_type, s.metric, s.item, s.value "
            "FROM scores s JOIN checkpoints c ON c.name = s.checkpoint "
            "WHERE NOT EXISTS (SELECT 1 FROM failures f WHERE f.stage = 'score' AND f.item = "
            "  s.metric || '/' || s.checkpoint || '/' || s.concept || '/' || s.prompt_type) "
            "AND (s.item != :set_item OR EXISTS (SELECT 1 FROM jobs j "
            "  JOIN images i ON i.image_key = j.image_key WHERE j.checkpoint = s.checkpoint "
            "  AND j.concept = s.concept AND j.prompt_type = s.prompt_type)) "
            "ORDER BY c.position, s.concept, s.prompt_type, s.metric, s.item",
            self.conn,
            params={"set_item": SET_ITEM},
        )

    def unusable_images(self) -> list[str]:
        """Keys of recorded images whose PNG is gone, not a file, or altered since it was
        written (hashed only when its mtime is after the row's creation, so a report stays
        cheap; a copy that keeps an older mtime, ``cp -p``, is caught by ``verify_images``,
        which ``run`` calls and which hashes every PNG)."""
        rows = self.conn.execute(
            "SELECT image_key, relpath, sha256, created_at FROM images ORDER BY relpath"
        )
        bad = []
        for key, rel, sha, created in rows:
            path = self.root / rel
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

    def score_replicates(self) -> dict[tuple[str, str, str, str], np.ndarray]:
        """(metric, checkpoint, concept, prompt_type) -> the bootstrap replicates stored with
        that set value (same identity), for planned checkpoints."""
        rows = self.conn.execute(
            "SELECT r.metric, r.checkpoint, r.concept, r.prompt_type, r.vector "
            "FROM score_replicates r JOIN checkpoints c ON c.name = r.checkpoint "
            "JOIN scores s ON s.metric = r.metric AND s.checkpoint = r.checkpoint "
            "AND s.concept = r.concept AND s.prompt_type = r.prompt_type "
            "AND s.identity = r.identity "
            "GROUP BY r.metric, r.checkpoint, r.concept, r.prompt_type"
        )
        return {(m, c, k, p): np.frombuffer(blob, dtype="<f8") for m, c, k, p, blob in rows}

    def group_means(self) -> dict[tuple[str, str, str], float]:
        """(metric, checkpoint, prompt_type) -> mean of the stored values."""
        rows = self.conn.execute(
            "SELECT metric, checkpoint, prompt_type, AVG(value) FROM scores "
            "GROUP BY metric, checkpoint, prompt_type"
        )
        return {(m, c, t): float(v) for m, c, t, v in rows if v is not None}

    def baselines_frame(self) -> pd.DataFrame:
        """Reference-vs-reference values: metric, concept, value."""
        return pd.read_sql_query(
            "SELECT metric, concept, value FROM baselines ORDER BY metric, concept", self.conn
        )

    def put_baselines(self, rows: list[tuple[str, str, float | None]]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)",
                [(m, c, None if v is None else _finite(v)) for m, c, v in rows],
            )

    # -- failures ------------------------------------------------------------------------
    def record_failure(self, stage: str, item: str, error: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)", (stage, item, error, time.time())
        )

    def clear_failure(self, stage: str, item: str) -> None:
        self.conn.execute("DELETE FROM failures WHERE stage = ? AND item = ?", (stage, item))

    def failures(self) -> list[tuple[str, str, str]]:
        rows = self.conn.execute("SELECT stage, item, error FROM failures ORDER BY stage, item")
        return list(rows)


def _blob(vector: np.ndarray, dtype: str) -> memoryview:
    """A vector's bytes as ``dtype`` without copying it when it already is."""
    return memoryview(np.ascontiguousarray(vector, dtype=dtype)).cast("B")


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


class FileHashCache:
    """The user-wide cache of file hashes (``file-hashes.sqlite`` in the user cache folder):
    (resolved path, size, mtime_ns, ctime_ns, inode) -> sha256. Used by
    :func:`t2i_bench.hashing.file_sha256` for large files; any failure to read or write it
    only costs a re-hash."""

    FILE = "file-hashes.sqlite"
    _KEY = "path = ? AND size = ? AND mtime_ns = ? AND ctime_ns = ? AND inode = ?"

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / self.FILE

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT, size INTEGER, mtime_ns INTEGER, "
            "ctime_ns INTEGER, inode INTEGER, sha256 TEXT NOT NULL, "
            "PRIMARY KEY (path, size, mtime_ns, ctime_ns, inode))"
        )
        return conn

    def get(self, key: tuple[str, int, int, int, int]) -> str | None:
        try:
            conn = self._connect()
            try:
                row = conn.execute(f"SELECT sha256 FROM file_hashes WHERE {self._KEY}", key)
                found = row.fetchone()
            finally:
                conn.close()
        except (OSError, sqlite3.Error):
            return None
        return found[0] if found else None

    def put(self, key: tuple[str, int, int, int, int], sha: str) -> None:
        """Remember ``sha`` for ``key``, dropping older entries of the same path."""
        try:
            conn = self._connect()
            try:
                with conn:
                    conn.execute("DELETE FROM file_hashes WHERE path = ?", (key[0],))
                    conn.execute("INSERT INTO file_hashes VALUES (?, ?, ?, ?, ?, ?)", (*key, sha))
            finally:
                conn.close()
        except (OSError, sqlite3.Error):
            pass

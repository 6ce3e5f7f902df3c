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
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from t2i_bench import faults
from t2i_bench.errors import BenchError
from t2i_bench.hashing import bytes_sha256
from t2i_bench.images import open_rgb

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, path TEXT, multiplier REAL, file_hash TEXT,
    hyperparameters TEXT NOT NULL, sources TEXT NOT NULL, run_id TEXT, config_id TEXT,
    position INTEGER NOT NULL, format TEXT NOT NULL, token TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    checkpoint TEXT NOT NULL, concept TEXT NOT NULL, prompt_type TEXT NOT NULL,
    template TEXT NOT NULL, prompt TEXT NOT NULL, seed INTEGER NOT NULL,
    image_key TEXT NOT NULL,
    PRIMARY KEY (checkpoint, concept, prompt_type, template, seed)
);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (image_key);
CREATE TABLE IF NOT EXISTS images (
    image_key TEXT PRIMARY KEY, relpath TEXT NOT NULL, sha256 TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    sha256 TEXT NOT NULL, backbone TEXT NOT NULL, vector BLOB NOT NULL, dim INTEGER NOT NULL,
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
CREATE TABLE IF NOT EXISTS baselines (
    metric TEXT NOT NULL, concept TEXT NOT NULL, value REAL, PRIMARY KEY (metric, concept)
);
CREATE TABLE IF NOT EXISTS failures (
    stage TEXT NOT NULL, item TEXT NOT NULL, error TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (stage, item)
);
"""


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
        self.conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

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
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (j.checkpoint, j.concept, j.prompt_type, j.template, j.prompt, j.seed, j.key)
                    for j in jobs
                ],
            )

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
        rows = self.conn.execute("SELECT image_key, relpath, sha256 FROM images")
        return {key: (rel, sha) for key, rel, sha in rows}

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

    def put_embeddings(self, backbone: str, items: dict[str, np.ndarray]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                [
                    (sha, backbone, np.asarray(v, dtype=np.float32).tobytes(), int(v.shape[-1]))
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
                f"SELECT sha256, vector FROM embeddings WHERE backbone = ? AND sha256 IN ({marks})",
                (backbone, *chunk),
            )
            found.update({sha: np.frombuffer(blob, dtype=np.float32) for sha, blob in rows})
        missing = [s for s in shas if s not in found]
        if missing:
            raise KeyError(f"{len(missing)} images have no {backbone} embedding")
        return np.stack([found[s] for s in shas]) if shas else np.zeros((0, 0), np.float32)

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
    ) -> None:
        """Replace one group's values (item -> value) atomically."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM scores "
                "WHERE metric = ? AND checkpoint = ? AND concept = ? AND prompt_type = ?",
                (metric, checkpoint, concept, prompt_type),
            )
            conn.executemany(
                "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (metric, checkpoint, concept, prompt_type, item, _finite(v), identity)
                    for item, v in values.items()
                ],
            )
        faults.checkpoint("score")

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


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None

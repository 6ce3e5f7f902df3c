"""Stable hashes: the identity of images, checkpoints, configs, score inputs and model weights.

File hashes are cached in this process and, for large files (model weights), across processes
in a small SQLite file under the user cache folder (``T2I_BENCH_CACHE_DIR``, default
``~/.cache/t2i-bench``), keyed by the file's resolved path, size, mtime, ctime and inode: a
multi-GB weight file is read once, and any change to it (even one that keeps the mtime)
changes the key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_ENV = "T2I_BENCH_CACHE_DIR"
#: Files at least this large have their hash kept across processes (smaller ones are
#: cheaper to hash again than to look up).
PERSIST_MIN_BYTES = 4 << 20


def stable_hash(obj: Any, length: int = 32) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys), hex, truncated."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def cache_dir() -> Path:
    """The user cache folder of t2i-bench (``T2I_BENCH_CACHE_DIR`` or ``~/.cache/t2i-bench``)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "t2i-bench"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes; cached while its path, size, times and inode are unchanged."""
    resolved = Path(path).resolve()
    st = resolved.stat()
    return _file_sha256(str(resolved), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    key = (path, size, mtime_ns, ctime_ns, inode)
    persist = size >= PERSIST_MIN_BYTES
    if persist and (known := _persistent_get(key)) is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    value = digest.hexdigest()
    if persist:
        _persistent_put(key, value)
    return value


def _hash_cache():  # noqa: ANN202  (store imports this module: import it late)
    from t2i_bench.store import FileHashCache

    return FileHashCache(cache_dir())


def _persistent_get(key: tuple[str, int, int, int, int]) -> str | None:
    return _hash_cache().get(key)


def _persistent_put(key: tuple[str, int, int, int, int], sha: str) -> None:
    _hash_cache().put(key, sha)


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".json", ".txt")


def tree_sha256(folder: Path) -> str:
    """A hash over a model folder's weight and config files (names and contents)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return stable_hash({str(p.relative_to(folder)): file_sha256(p) for p in files})

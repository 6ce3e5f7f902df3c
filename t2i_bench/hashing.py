"""Stable hashes: the identity of images, checkpoints, configs and score inputs."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any


def stable_hash(obj: Any, length: int = 32) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys), hex, truncated."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes; cached while the file's size and mtime are unchanged."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".json", ".txt")


def tree_sha256(folder: Path) -> str:
    """A hash over a model folder's weight and config files (names and contents)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return stable_hash({str(p.relative_to(folder)): file_sha256(p) for p in files})

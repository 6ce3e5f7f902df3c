"""The persistent file-hash cache: a large file is read once across processes; any change to
the file (contents, times, inode) is a new key; the cache only ever saves time."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from t2i_bench import hashing
from t2i_bench.store import FileHashCache

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("T2I_BENCH_CACHE_DIR", str(folder))
    monkeypatch.setattr(hashing, "PERSIST_MIN_BYTES", 1024)
    hashing._file_sha256.cache_clear()
    yield folder
    hashing._file_sha256.cache_clear()


def _no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the file was read again")

    monkeypatch.setattr(hashing, "open", refuse, raising=False)


def _key(path: Path) -> tuple[str, int, int, int, int]:
    st = path.resolve().stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def test_large_file_hash_is_read_once_and_kept_across_processes(cache, tmp_path, monkeypatch):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(4096))
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert hashing.file_sha256(weights) == expected
    assert FileHashCache(cache).get(_key(weights)) == expected
    # another process finds it without reading the file
    code = (
        "import sys; from t2i_bench import hashing\n"
        "hashing.PERSIST_MIN_BYTES = 1024\n"
        "def refuse(*a, **k): raise SystemExit('read again')\n"
        "hashing.open = refuse\n"
        "print(hashing.file_sha256(sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "T2I_BENCH_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(weights)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
    # same process, in-memory cache dropped: still no read
    hashing._file_sha256.cache_clear()
    with monkeypatch.context() as patch:
        _no_reading(patch)
        assert hashing.file_sha256(weights) == expected


def test_any_change_to_the_file_is_a_new_key(cache, tmp_path, monkeypatch) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"a" * 4096)
    first = hashing.file_sha256(weights)
    stat = weights.stat()
    weights.write_bytes(b"b" * 4096)  # same size ...
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and same mtime
    second = hashing.file_sha256(weights)  # the ctime moved: read again
    assert second == hashlib.sha256(b"b" * 4096).hexdigest() != first
    # replaced by another file (new inode) with the old contents
    other = tmp_path / "other.bin"
    other.write_bytes(b"a" * 4096)
    os.replace(other, weights)
    assert hashing.file_sha256(weights) == first
    with FileHashCache(cache)._connect() as conn:  # one row per path: old entries dropped
        rows = conn.execute("SELECT COUNT(*) FROM file_hashes").fetchone()[0]
    assert rows == 1


def test_small_files_are_not_kept_and_a_broken_cache_only_costs_time(tmp_path, monkeypatch):
    monkeypatch.setenv("T2I_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    hashing._file_sha256.cache_clear()
    small = tmp_path / "small.png"
    small.write_bytes(b"x" * 100)
    assert hashing.file_sha256(small) == hashlib.sha256(b"x" * 100).hexdigest()
    assert not (tmp_path / "cache" / FileHashCache.FILE).exists()
    # a cache folder that cannot be created: hashing still works
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("T2I_BENCH_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(hashing, "PERSIST_MIN_BYTES", 1)
    hashing._file_sha256.cache_clear()
    assert hashing.file_sha256(small) == hashlib.sha256(b"x" * 100).hexdigest()
    hashing._file_sha256.cache_clear()


def test_default_cache_dir_is_under_the_user_cache(monkeypatch) -> None:
    monkeypatch.delenv("T2I_BENCH_CACHE_DIR", raising=False)
    assert hashing.cache_dir() == Path.home() / ".cache" / "t2i-bench"
    monkeypatch.setenv("T2I_BENCH_CACHE_DIR", "~/elsewhere")
    assert hashing.cache_dir() == Path.home() / "elsewhere"

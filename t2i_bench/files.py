"""Reading user files safely: regular files only (a FIFO or device would block or never end),
a size limit, and UTF-8 text, each problem a one-line BenchError naming the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from t2i_bench.errors import BenchError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def require_regular_file(path: str | Path, what: str = "file", allow_dir: bool = False) -> None:
    """Refuse a missing path, or anything but a regular file (or a folder with ``allow_dir``),
    without opening it: opening a FIFO blocks, reading a device never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BenchError(f"{what} file not found", path) from None
    except OSError as exc:
        raise BenchError(f"cannot read {what} file ({exc.strerror})", path) from None
    if stat.S_ISREG(mode) or (allow_dir and stat.S_ISDIR(mode)):
        return
    article = "an" if what[:1].lower() in "aeiou" else "a"
    expected = f"{article} {what} file" + (" or folder" if allow_dir else "")
    raise BenchError(f"{file_kind(mode)}, not {expected}", path)


def read_text(path: str | Path, what: str = "file", max_bytes: int = 1 << 20) -> str:
    """A regular UTF-8 text file of at most ``max_bytes`` (a UTF-8 BOM is skipped)."""
    require_regular_file(path, what)
    size = os.stat(path).st_size
    if size > max_bytes:
        raise BenchError(
            f"{what} file is {size:,} bytes, over the limit of {max_bytes:,} bytes", path
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise BenchError(f"cannot read {what} file ({exc.strerror})", path) from None
    return decode_utf8(data, path, what)


def decode_utf8(data: bytes, path: str | Path, what: str = "file") -> str:
    """``data`` as UTF-8 text; anything else names the first bad byte and its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start]
        raise BenchError(
            f"{what} file is not UTF-8 text (byte 0x{byte:02x} on line {line}); save it as UTF-8",
            path,
        ) from None

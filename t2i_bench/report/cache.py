"""A memo for the report stage: an output is rebuilt only when what it is made from changed.

Each memoised output (a plot with its CSV, the ``analysis/`` folder) is recorded in the run
folder's ``report-cache/index.json`` under a name, with a key hashing its input data (the
contents of the tables, not their names) and the code that makes it (the source files of the
package of the function, t2i-bench's version and the plotting libraries' versions), and the
sha256 of every file it wrote. A later call with the same key reuses the files while they
are all intact; anything else (new data, edited code, a file altered or missing) recomputes.

A plot function ``fn(..., stem)`` that writes ``stem.png`` (and ``stem.csv`` or other files
named ``stem.<suffix>``) and returns their path(s) is memoised by calling it as
``memoised(fn)(...)`` (or decorating it with ``@memoised``): inside ``with ReportMemo(root)``
(the report stage) it is drawn only when its arguments or code changed; elsewhere it is a plain
call. :meth:`ReportMemo.call` memoises a computation that writes a folder and returns a value
(a dataclass whose fields are tables, plain JSON values or such dataclasses, restored from
``report-cache/``).
Files no output claimed in this session are removed by :meth:`ReportMemo.sweep`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from t2i_bench.hashing import file_sha256
from t2i_bench.store import atomic_write_bytes

CACHE_DIR = "report-cache"
INDEX = "index.json"
FORMAT = 1  # of the index; another value is treated as an empty cache
LIBRARIES = ("matplotlib", "pandas", "numpy", "catboost", "jinja2", "pillow")

T = TypeVar("T")
_ACTIVE: ContextVar[ReportMemo | None] = ContextVar("t2i_bench_report_memo", default=None)


def memoised(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` (a plot function with a ``stem`` parameter) through the active
    :class:`ReportMemo`, or called as is when none is active."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> T:
        memo = _ACTIVE.get()
        return fn(*args, **kwargs) if memo is None else memo.plot(fn)(*args, **kwargs)

    return call


def claim(*paths: Path) -> None:
    """Mark files written outside the memo as current in the active :class:`ReportMemo`
    (so its sweep keeps them); nothing when none is active."""
    memo = _ACTIVE.get()
    if memo is not None:
        memo.claim(*paths)


def data_hash(obj: Any) -> str:
    """SHA-256 of a value's contents: tables (column names, dtypes, index and every cell,
    exactly), arrays, mappings, sequences, dataclasses, paths (as text) and scalars.

    Equal contents give equal hashes across processes; a cell's type counts (``1`` and
    ``"1"`` differ), so a cached output is never reused for different data."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest: Any, obj: Any) -> None:
    def tag(text: str) -> None:
        digest.update(f"\x00{text}\x01".encode())

    if isinstance(obj, pd.DataFrame):
        tag(f"frame{obj.shape}")
        _feed(digest, obj.index)
        for name in obj.columns:
            _feed(digest, name)
            _feed(digest, obj[name])
    elif isinstance(obj, pd.Series | pd.Index):
        tag(f"{type(obj).__name__}:{obj.dtype}:{len(obj)}")
        if isinstance(obj, pd.RangeIndex):
            tag(f"{obj.start}:{obj.stop}:{obj.step}")
        else:
            _feed(digest, obj.to_numpy())
    elif isinstance(obj, np.ndarray):
        tag(f"array:{obj.dtype}:{obj.shape}")
        if obj.dtype.kind in "biufcmM":
            digest.update(np.ascontiguousarray(obj).tobytes())
        else:
            for item in obj.ravel():
                _feed(digest, item)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        tag(f"dataclass:{type(obj).__qualname__}")
        for spec in dataclasses.fields(obj):
            _feed(digest, spec.name)
            _feed(digest, getattr(obj, spec.name))
    elif isinstance(obj, Mapping):
        tag(f"mapping:{len(obj)}")
        for key in sorted(obj, key=repr):
            _feed(digest, key)
            _feed(digest, obj[key])
    elif isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        tag(f"{type(obj).__name__}:{len(items)}")
        for item in items:
            _feed(digest, item)
    elif isinstance(obj, Path):
        tag(f"path:{obj.as_posix()}")
    elif obj is None or isinstance(obj, str | bytes | bool | int | float | complex | np.generic):
        tag(f"{type(obj).__name__}:{obj!r}")  # repr: exact for floats, typed for numpy
    elif hasattr(obj, "model_dump"):  # pydantic models (settings)
        tag(f"model:{type(obj).__qualname__}")
        _feed(digest, obj.model_dump(mode="json"))
    else:
        raise TypeError(f"data_hash cannot hash a {type(obj).__name__}")


@functools.cache
def _package_sources(package_dir: str) -> str:
    """SHA-256 over the names and contents of a package folder's ``.py`` files."""
    digest = hashlib.sha256()
    for path in sorted(Path(package_dir).glob("*.py")):
        digest.update(path.name.encode() + b"\x00" + path.read_bytes() + b"\x01")
    return digest.hexdigest()


@functools.cache
def _library_versions() -> str:
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=-")
    return ",".join(versions)


def code_version(*objects: Any) -> str:
    """A hash of the code that makes an output: for each function, module or module name
    given, the source files of its package folder (a name is found without importing the
    module); t2i-bench's version; the plotting and table libraries' versions."""
    from t2i_bench import __version__

    parts = [__version__, sys.version.split()[0], _library_versions()]
    for obj in objects:
        if isinstance(obj, str):
            spec = importlib.util.find_spec(obj)
            name, source = obj, spec.origin if spec is not None else None
        else:
            module = inspect.getmodule(obj)
            name, source = getattr(module, "__name__", ""), getattr(module, "__file__", None)
        if source is None:
            raise TypeError(f"code_version: no source file for {obj!r}")
        parts.append(f"{name}:{_package_sources(str(Path(source).parent))}")
    return data_hash(parts)


class ReportMemo:
    """The report stage's memo for one run folder (see the module docstring).

    Entries live in ``<root>/report-cache/index.json``; :meth:`save` writes it (atomically),
    :meth:`sweep` removes the files in a folder that no output claimed in this session."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder = self.root / CACHE_DIR
        self.entries: dict[str, dict[str, Any]] = self._load()
        self.claimed: set[Path] = set()
        self.hits: list[str] = []
        self.misses: list[str] = []
        self._token: Any = None

    def __enter__(self) -> ReportMemo:
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._token)
        self.save()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def save(self) -> None:
        """Write the index (entries of this session and earlier ones still on disk)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT, "entries": dict(sorted(self.entries.items()))}
        text = json.dumps(data, indent=1, sort_keys=True)
        atomic_write_bytes(self.folder / INDEX, text.encode("utf-8"))

    # ------------------------------------------------------------------ lookups

    def _rel(self, path: Path) -> str:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root)).as_posix()

    def _intact(self, entry: dict[str, Any]) -> bool:
        for rel, sha in entry.get("files", {}).items():
            path = self.root / rel
            try:
                if file_sha256(path) != sha:
                    return False
            except OSError:
                return False
        return True

    def _hit(self, name: str, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(name)
        if entry is None or entry.get("key") != key or not self._intact(entry):
            return None
        self.claimed.update(self.root / rel for rel in entry.get("files", {}))
        self.hits.append(name)
        return entry

    def _record(self, name: str, key: str, files: Iterable[Path], value: Any = None) -> None:
        paths = sorted({Path(p) for p in files if Path(p).is_file()})
        self.claimed.update(paths)
        self.entries[name] = {
            "key": key,
            "files": {self._rel(p): file_sha256(p) for p in paths},
            "value": value,
        }
        self.misses.append(name)

    # ------------------------------------------------------------------ plots

    def plot(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` memoised: a plot function with a ``stem`` parameter that writes files named
        ``stem.<suffix>`` and returns a path, a sequence of paths or strings, or None.

        The key hashes every argument (tables by content, the stem by its path) and the
        code of ``fn``'s package; on a hit nothing is drawn and the same value is returned.
        """
        signature = inspect.signature(fn)
        if "stem" not in signature.parameters:
            raise TypeError(f"{fn.__qualname__} has no 'stem' parameter")
        code = code_version(fn)

        @functools.wraps(fn)
        def memoised(*args: Any, **kwargs: Any) -> T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            stem = Path(bound.arguments["stem"])
            name = f"plot:{self._rel(stem)}"
            key = data_hash([fn.__module__, fn.__qualname__, code, dict(bound.arguments)])
            entry = self._hit(name, key)
            if entry is not None:
                return _decode_result(entry["value"], self.root)
            self.entries.pop(name, None)
            result = fn(*bound.args, **bound.kwargs)
            encoded = _encode_result(result, self.root)
            files = _stem_files(stem)
            if encoded is _UNCACHEABLE:
                self.claimed.update(files)
            else:
                self._record(name, key, files, encoded)
            return result

        return memoised

    # ------------------------------------------------------------------ folders and values

    def call(
        self,
        name: str,
        inputs: Any,
        compute: Callable[[], T],
        *,
        code: tuple[Any, ...],
        outputs: Path,
        returns: type[T],
    ) -> T:
        """``compute()`` unless an earlier call with the same ``inputs`` (hashed by content)
        and ``code`` (functions, modules or module names: their packages' sources) left its
        ``outputs`` folder intact; then the value comes back from ``report-cache/`` without
        computing.

        ``returns`` is a dataclass whose fields are tables (stored as parquet, reused only
        if they read back equal) or JSON values; a value that does not round-trip is not
        cached (the call computes every time)."""
        key = data_hash([name, code_version(*code), inputs])
        entry = self._hit(name, key)
        if entry is not None:
            value = _decode_value(returns, entry["value"], self.folder / _slug(name))
            if value is not None:
                return value
        self.entries.pop(name, None)
        result = compute()
        files = [p for p in Path(outputs).rglob("*") if p.is_file()]
        tables = self.folder / _slug(name)
        encoded = _encode_value(result, tables)
        if encoded is _UNCACHEABLE:
            self.claimed.update(files)
        else:  # the stored tables are checked like the outputs
            self._record(name, key, [*files, *tables.rglob("*.parquet")], encoded)
        return result

    # ------------------------------------------------------------------ cleaning

    def claim(self, *paths: Path) -> None:
        """Mark files written outside the memo as current (kept by :meth:`sweep`)."""
        self.claimed.update(Path(p) for p in paths)

    def sweep(self, folder: Path) -> list[Path]:
        """Remove the files in ``folder`` (recursively) that no output claimed in this
        session, and the entries whose files are gone; returns the removed files."""
        claimed = {Path(os.path.abspath(p)) for p in self.claimed}
        removed = []
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and Path(os.path.abspath(path)) not in claimed:
                path.unlink()
                removed.append(path)
        for name, entry in list(self.entries.items()):
            if any(not (self.root / rel).is_file() for rel in entry.get("files", {})):
                del self.entries[name]
        return removed


_UNCACHEABLE = object()


def _stem_files(stem: Path) -> list[Path]:
    """Files named ``stem.<suffix>`` (one suffix) beside the stem."""
    prefix = stem.name + "."
    if not stem.parent.is_dir():
        return []
    return [
        p
        for p in stem.parent.iterdir()
        if p.is_file() and p.name.startswith(prefix) and "." not in p.name[len(prefix) :]
    ]


def _encode_result(result: Any, root: Path) -> Any:
    """A plot function's return value as JSON: paths inside the run folder relative to it."""
    if result is None or isinstance(result, str):
        return {"kind": "plain", "value": result}
    if isinstance(result, Path):
        return {"kind": "path", "value": _relative(result, root)}
    if isinstance(result, list | tuple) and all(isinstance(r, Path | str) for r in result):
        items = [
            {"path": _relative(r, root)} if isinstance(r, Path) else {"text": r} for r in result
        ]
        return {"kind": type(result).__name__, "value": items}
    return _UNCACHEABLE


def _decode_result(data: dict[str, Any], root: Path) -> Any:
    kind, value = data["kind"], data["value"]
    if kind == "plain":
        return value
    if kind == "path":
        return _absolute(value, root)
    items = [_absolute(i["path"], root) if "path" in i else i["text"] for i in value]
    return tuple(items) if kind == "tuple" else items


def _relative(path: Path, root: Path) -> dict[str, str]:
    """``{"inside": path relative to the run folder}``, or ``{"outside": path}``."""
    try:
        inside = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return {"outside": str(path)}
    return {"inside": inside.as_posix()}


def _absolute(data: dict[str, str], root: Path) -> Path:
    """The path back, below the run folder as this memo names it."""
    return root / data["inside"] if "inside" in data else Path(data["outside"])


def _encode_value(value: Any, folder: Path) -> Any:
    """A dataclass as JSON fields, its tables as parquet files in ``folder`` (each checked to
    read back equal); ``_UNCACHEABLE`` when any field cannot be stored exactly."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return _UNCACHEABLE
    shutil.rmtree(folder, ignore_errors=True)
    fields: dict[str, Any] = {}
    for spec in dataclasses.fields(value):
        item = getattr(value, spec.name)
        if isinstance(item, pd.DataFrame):
            path = folder / f"{spec.name}.parquet"
            if not _store_frame(item, path):
                shutil.rmtree(folder, ignore_errors=True)
                return _UNCACHEABLE
            fields[spec.name] = {"table": path.name}
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            nested = _encode_value(item, folder / spec.name)
            if nested is _UNCACHEABLE:
                shutil.rmtree(folder, ignore_errors=True)
                return _UNCACHEABLE
            fields[spec.name] = {"dataclass": nested}
        else:
            try:
                text = json.dumps(item)
            except (TypeError, ValueError):
                return _UNCACHEABLE
            if json.loads(text) != item or _has_tuples(item):
                return _UNCACHEABLE
            fields[spec.name] = {"json": item}
    return fields


def _has_tuples(item: Any) -> bool:
    if isinstance(item, tuple):
        return True
    if isinstance(item, list):
        return any(_has_tuples(i) for i in item)
    if isinstance(item, dict):
        return any(_has_tuples(i) for i in item.values())
    return False


def _store_frame(frame: pd.DataFrame, path: Path) -> bool:
    """Write ``frame`` as parquet; True only if it reads back equal (values, dtypes, index,
    columns), so a reused table is exactly the computed one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        frame.to_parquet(path)
        back = pd.read_parquet(path)
        pd.testing.assert_frame_equal(back, frame, check_exact=True)
        if json.dumps(back.attrs, sort_keys=True) != json.dumps(frame.attrs, sort_keys=True):
            raise ValueError("attrs differ")
    except Exception:  # any type parquet cannot hold exactly: not cached
        path.unlink(missing_ok=True)
        return False
    return True


def _decode_value(cls: type[T], fields: Any, folder: Path) -> T | None:
    """The dataclass back from :func:`_encode_value`; None if a table file is unreadable."""
    if not isinstance(fields, dict):
        return None
    kwargs: dict[str, Any] = {}
    try:
        for name, stored in fields.items():
            if "table" in stored:
                kwargs[name] = pd.read_parquet(folder / stored["table"])
            elif "dataclass" in stored:
                kind = _dataclass_type(cls, name)
                nested = _decode_value(kind, stored["dataclass"], folder / name)
                if nested is None:
                    return None
                kwargs[name] = nested
            else:
                kwargs[name] = stored["json"]
        return cls(**kwargs)
    except Exception:  # a damaged cache is a miss, never an error
        return None


def _dataclass_type(cls: type, name: str) -> type:
    """The dataclass type of field ``name`` of ``cls`` (``X`` or ``X | None``)."""
    hint = typing.get_type_hints(cls)[name]
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    raise TypeError(f"{cls.__name__}.{name} is not a dataclass field")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)

"""Read the long metrics table and the configs table; join them; write tables atomically.

The formats are documented in ``docs/analysis.md``. Every problem a user can fix raises
:class:`~t2i_bench.errors.BenchError` with a one-line message naming the file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_bench.columns import (
    BASE_CHECKPOINT,
    ID_COLUMNS,
    INTERVALS,
    METRIC_KEY_COLUMNS,
    PER_IMAGE_COLUMNS,
    RUN_COLUMNS,
    VALUE,
)
from t2i_bench.errors import BenchError
from t2i_bench.files import require_regular_file
from t2i_bench.prompt_types import PROMPT_TYPE_NAMES

#: Columns every metrics table must have (names from t2i_bench/columns.py).
REQUIRED_METRIC_COLUMNS = (*METRIC_KEY_COLUMNS, VALUE)
#: Optional per-image columns; when present, rows are per-image values.
OPTIONAL_METRIC_COLUMNS = PER_IMAGE_COLUMNS
#: Optional interval of a value computed elsewhere (a set metric's bootstrap over its images);
#: used for groups that have a single value.
INTERVAL_COLUMNS = INTERVALS
#: The prompt types t2i-bench generates (the registry's order); other names are accepted.
PROMPT_TYPES = PROMPT_TYPE_NAMES
#: Strings read as a missing number or hyperparameter (exact match after stripping spaces).
#: In name columns (checkpoint, concept, ids…) only the empty string is missing.
NA_STRINGS = frozenset({"", "N/A", "NA", "n/a", "na", "NaN", "nan", "null", "None"})
_EMPTY = frozenset({""})
#: Category given to rows whose category is empty.
DEFAULT_CATEGORY = "uncategorized"
_STRING_CONFIG_COLUMNS = ("checkpoint", "run_id", "config_id", "algo", "preset")
#: A text cell starting with one of these is a formula to a spreadsheet (CSV injection);
#: written CSVs prefix it with ``'``, and the readers here take the prefix off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_START = "[" + re.escape("".join(FORMULA_STARTS)) + "]"
_NEEDS_QUOTE = re.compile("'*" + _START)
_QUOTED = re.compile("'+" + _START)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def read_metrics_table(path: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a long metrics table (CSV or parquet), one value per row.

    Key columns come back as strings, ``value`` as float64 with ``N/A``/``NA``/empty as NaN.
    Raises BenchError naming the file for a missing column, an empty key or a value that is
    not a number.
    """
    path = path if isinstance(path, pd.DataFrame) else Path(path)
    raw = _read_any(path)
    path = "metrics table" if isinstance(path, pd.DataFrame) else path
    missing = [c for c in REQUIRED_METRIC_COLUMNS if c not in raw.columns]
    if missing:
        raise BenchError(f"metrics table has no column {missing[0]!r}", path)
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    for col in METRIC_KEY_COLUMNS:
        out[col] = _as_text(raw[col], _EMPTY)
    out["category"] = out["category"].fillna(DEFAULT_CATEGORY)
    for col in ("checkpoint", "concept", "prompt_type", "metric"):
        empty = out[col].isna()
        if empty.any():
            raise BenchError(f"empty {col!r} in data row {_row_number(empty)}", path)
    out["value"] = _as_float(raw["value"], "value", path)
    for col in OPTIONAL_METRIC_COLUMNS:
        if col in raw.columns:
            out[col] = _as_text(raw[col], _EMPTY)
    if any(col in raw.columns for col in INTERVAL_COLUMNS):
        missing = [c for c in INTERVAL_COLUMNS if c not in raw.columns]
        if missing:
            raise BenchError(f"metrics table has no column {missing[0]!r}", path)
        for col in INTERVAL_COLUMNS:
            out[col] = _as_float(raw[col], col, path)
        bad = out["ci_low"] > out["ci_high"]
        if bad.any():
            raise BenchError(f"ci_low is above ci_high in data row {_row_number(bad)}", path)
    return out


def read_configs_table(path: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a configs table (CSV or parquet), one row per checkpoint.

    ``checkpoint`` is required and unique. Columns whose values all parse as numbers become
    float64 (empty/``N/A`` → NaN); others stay strings. ``config_id`` and ``run_id`` are
    derived when absent (see :func:`complete_configs`).
    """
    path = path if isinstance(path, pd.DataFrame) else Path(path)
    raw = _read_any(path)
    path = "configs table" if isinstance(path, pd.DataFrame) else path
    if "checkpoint" not in raw.columns:
        raise BenchError("configs table has no column 'checkpoint'", path)
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    for col in raw.columns:
        text = _as_text(raw[col], _EMPTY if col in ID_COLUMNS else NA_STRINGS)
        if col in _STRING_CONFIG_COLUMNS:
            out[col] = text
            continue
        numeric = pd.to_numeric(text, errors="coerce")
        if numeric.isin([np.inf, -np.inf]).any():
            row = _row_number(numeric.isin([np.inf, -np.inf]))
            raise BenchError(f"column {col!r} has an infinite value (data row {row})", path)
        out[col] = numeric.astype("float64") if numeric.notna().eq(text.notna()).all() else text
    empty = out["checkpoint"].isna()
    if empty.any():
        raise BenchError(f"empty 'checkpoint' in data row {_row_number(empty)}", path)
    dup = out["checkpoint"].duplicated()
    if dup.any():
        name = out["checkpoint"][dup].iloc[0]
        raise BenchError(f"checkpoint {name!r} appears more than once in the configs table", path)
    return complete_configs(out)


def hyperparameter_columns(configs: pd.DataFrame) -> list[str]:
    """Columns of ``configs`` that are hyperparameters (everything but the identifiers)."""
    return [c for c in configs.columns if c not in ID_COLUMNS]


def complete_configs(configs: pd.DataFrame) -> pd.DataFrame:
    """Fill in ``config_id`` and ``run_id`` where a configs table lacks them (or has blanks).

    ``config_id`` = the hyperparameters other than seed, epoch and step, joined as
    ``name=value`` pairs; ``run_id`` = ``config_id`` plus the training seed. The base row
    gets ``config_id = run_id = "base"``.
    """
    out = configs.copy()
    is_base = out["checkpoint"].eq(BASE_CHECKPOINT)
    defining = [c for c in hyperparameter_columns(out) if c not in RUN_COLUMNS]
    derived = _join_values(out, defining)
    out["config_id"] = _filled(out, "config_id", derived)
    seed = out["seed"] if "seed" in out.columns else pd.Series("", index=out.index)
    out["run_id"] = _filled(out, "run_id", out["config_id"] + "|seed=" + _text_values(seed))
    for col in ("config_id", "run_id"):
        out[col] = out[col].where(~is_base, BASE_CHECKPOINT)
    return out


def _filled(frame: pd.DataFrame, column: str, default: pd.Series) -> pd.Series:
    """``frame[column]`` as text with empty entries (or the whole column) from ``default``."""
    if column not in frame.columns:
        return default.astype("str")
    return _as_text(frame[column], _EMPTY).fillna(default).astype("str")


def attach_configs(
    frame: pd.DataFrame,
    configs: pd.DataFrame,
    *,
    on_missing: str = "error",
    warnings: list[str] | None = None,
    path: str | Path | None = None,
) -> pd.DataFrame:
    """Left-join ``configs`` onto ``frame`` by ``checkpoint``.

    ``config_id``/``run_id`` are filled in where missing (:func:`complete_configs`). A base
    row is added to ``configs`` when ``frame`` has a ``base`` checkpoint and the
    configs table does not. Other checkpoints missing from ``configs`` raise BenchError
    (``on_missing="error"``, the default) or are dropped with a message appended to
    ``warnings`` (``on_missing="drop"``).
    """
    if on_missing not in ("error", "drop"):
        raise ValueError(f"on_missing must be 'error' or 'drop', not {on_missing!r}")
    configs = prepare_configs(configs)
    known = set(configs["checkpoint"])
    absent = sorted(set(frame["checkpoint"]) - known)
    if absent:
        shown = ", ".join(repr(c) for c in absent[:5]) + (" …" if len(absent) > 5 else "")
        message = f"{len(absent)} checkpoint(s) missing from the configs table: {shown}"
        if on_missing == "error":
            raise BenchError(message, path)
        if warnings is not None:
            warnings.append(f"{message}; dropped")
        frame = frame[~frame["checkpoint"].isin(absent)]
    overlap = [c for c in configs.columns if c in frame.columns and c != "checkpoint"]
    return frame.drop(columns=overlap).merge(configs, on="checkpoint", how="left")


def prepare_configs(configs: pd.DataFrame) -> pd.DataFrame:
    """``configs`` with ids filled in (:func:`complete_configs`) and a base row."""
    return ensure_base_row(complete_configs(configs))


def ensure_base_row(configs: pd.DataFrame) -> pd.DataFrame:
    """Return ``configs`` with a ``base`` row (empty hyperparameters) if it had none."""
    if configs["checkpoint"].eq(BASE_CHECKPOINT).any():
        return configs
    base = {c: np.nan for c in configs.columns}
    base.update(checkpoint=BASE_CHECKPOINT, config_id=BASE_CHECKPOINT, run_id=BASE_CHECKPOINT)
    row = pd.DataFrame([base])[list(configs.columns)]
    row = row.astype({c: configs[c].dtype for c in configs.columns}, errors="ignore")
    return pd.concat([configs, row], ignore_index=True)


def csv_cell(value: object) -> object:
    """A text cell made safe for spreadsheets: ``'`` before a formula start (``=``, ``+``,
    ``-``, ``@``, tab, CR); numbers, also text ones like ``-0.5``, stay as they are. Text that
    already starts with quotes and a formula start gets one more, so :func:`restore_cell`
    gives back exactly the original."""
    if isinstance(value, str) and _NEEDS_QUOTE.match(value) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def restore_cell(value: object) -> object:
    """The inverse of :func:`csv_cell`."""
    if isinstance(value, str) and _QUOTED.match(value):
        return value[1:]
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name passed through :func:`csv_cell`."""
    out = frame.rename(columns=csv_cell)
    for col in range(out.shape[1]):
        column = out.iloc[:, col]
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            out.isetitem(col, column.map(csv_cell, na_action="ignore"))
    return out


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV (``%.6g`` floats, ``\\n`` line ends, :func:`csv_safe`) or parquet file
    atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            safe = csv_safe(frame)
            safe.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _read_any(path: Path | pd.DataFrame) -> pd.DataFrame:
    """A table from a CSV/parquet file, or an in-memory frame (read as a file would be)."""
    if isinstance(path, pd.DataFrame):
        return path.copy()
    require_regular_file(path, "table")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
            raw = raw.rename(columns=restore_cell)
            return raw.map(restore_cell) if raw.size else raw
    except (ValueError, OSError) as exc:
        raise BenchError(f"cannot read table: {exc}", path) from exc
    raise BenchError(f"unknown table format {suffix!r} (expected .csv or .parquet)", path)


def _as_text(column: pd.Series, missing: frozenset[str] = NA_STRINGS) -> pd.Series:
    """Strings, stripped; ``missing`` strings → NaN. Whole floats lose their ``.0``."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        column = column.map(_compact_number).astype("object")
    text = column.astype("str").str.strip()
    return text.mask(column.isna() | text.isin(missing))


def _compact_number(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def _as_float(column: pd.Series, name: str, path: Path) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.astype("float64")
        text = numbers.map(repr).mask(numbers.isna())
    else:
        text = _as_text(column)
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    for bad, what in (
        (numbers.isna() & text.notna(), "not a number"),
        (numbers.isin([np.inf, -np.inf]), "not a finite number"),
    ):
        if bad.any():
            first = text[bad].iloc[0]
            raise BenchError(
                f"column {name!r} has a value that is {what}: {first!r} "
                f"(data row {_row_number(bad)})",
                path,
            )
    return numbers


def _row_number(mask: pd.Series) -> int:
    """1-based data row (header not counted) of the first True in ``mask``."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + 1


def _text_values(column: pd.Series) -> pd.Series:
    def text(value: object) -> str:
        if pd.isna(value):
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)

    return column.map(text).astype("str")


def _join_values(frame: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    columns = list(columns)
    if not columns:
        return pd.Series("default", index=frame.index, dtype="str")
    parts = [f"{c}=" + _text_values(frame[c]) for c in columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "," + part
    return joined

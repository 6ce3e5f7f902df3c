"""The CLI's one error boundary: every expected error becomes one line and an exit code.

Exit codes (docs/reliability.md):

- 0: done; 1: done, but failures were recorded in the store (listed at the end);
- 2: bad input or environment (config, files, device, disk, database): fix it and rerun;
- 3: an internal error, a bug in t2i-bench: rerun with ``--debug`` for the traceback;
- 130: interrupted (Ctrl-C).

Whatever stage an error stops, everything written before it (images, embeddings, scores) is
in the store, and the same command resumes from there.
"""

from __future__ import annotations

import errno
import re
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from t2i_bench.errors import BenchError

EXIT_FAILURES = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
KEPT = "everything written so far is kept"


@dataclass(frozen=True)
class Outcome:
    """What the CLI prints (one line, without the ``error:`` prefix) and exits with."""

    code: int
    message: str


def describe(exc: BaseException, database: Callable[[], Path | None] | None = None) -> Outcome:
    """The line and exit code for ``exc``; ``database`` names the run's ``run.sqlite``."""
    if isinstance(exc, BenchError):
        return Outcome(EXIT_BAD_INPUT, str(exc))
    if isinstance(exc, KeyboardInterrupt):
        return Outcome(EXIT_INTERRUPTED, f"interrupted; {KEPT}: run the same command to resume")
    if isinstance(exc, UnicodeDecodeError):  # the readers name the file; this is a fallback
        return Outcome(EXIT_BAD_INPUT, f"a file is not UTF-8 text ({exc}); save it as UTF-8")
    if isinstance(exc, OSError):
        return Outcome(EXIT_BAD_INPUT, _os_error(exc))
    if isinstance(exc, sqlite3.DatabaseError):
        where = _safe(database)
        prefix = f"{where}: " if where else "the run database: "
        return Outcome(
            EXIT_BAD_INPUT,
            f"{prefix}unusable SQLite database ({exc}); if it is damaged, move it away and "
            "run again (the run folder starts afresh)",
        )
    if isinstance(exc, re.error):
        pattern = exc.pattern if isinstance(exc.pattern, str) else repr(exc.pattern)
        return Outcome(EXIT_BAD_INPUT, f"invalid regular expression {pattern!r} ({exc})")
    torch_line = _torch_error(exc)
    if torch_line:
        return Outcome(EXIT_BAD_INPUT, torch_line)
    catboost = sys.modules.get("catboost")
    if catboost is not None and isinstance(exc, catboost.CatBoostError):
        return Outcome(EXIT_BAD_INPUT, f"the importance analysis failed in CatBoost ({exc})")
    if isinstance(exc, MemoryError):
        return Outcome(EXIT_BAD_INPUT, f"out of memory; {KEPT}: lower batch sizes and rerun")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return Outcome(
        EXIT_INTERNAL,
        f"internal error: {type(exc).__name__}: {first}; this is a bug in t2i-bench "
        f"({KEPT}): rerun with --debug for the traceback and report it",
    )


def _os_error(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else ""
    where = f"{name}: " if name else ""
    if exc.filename2:
        where = f"{name} -> {exc.filename2}: "
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{where}disk full ({exc.strerror}); {KEPT}: free space and run the same command again"
        )
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}{reason}"


def _torch_error(exc: BaseException) -> str | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return (
            f"out of device memory ({str(exc).splitlines()[0]}); {KEPT}: lower "
            "sampler.batch_size or backbones.batch_size and run the same command again"
        )
    accelerator = getattr(torch, "AcceleratorError", ())
    if isinstance(exc, accelerator):
        return f"device error ({str(exc).splitlines()[0]}); {KEPT}"
    return None


def _safe(hint: Callable[[], Path | None] | None) -> Path | None:
    if hint is None:
        return None
    try:
        return hint()
    except Exception:  # the hint only improves the message
        return None

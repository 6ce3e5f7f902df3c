"""User-facing errors: one line, naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path


class BenchError(Exception):
    """An error the user caused or can fix; the CLI prints it as one line, no traceback."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)

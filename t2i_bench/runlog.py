"""Where library chatter goes: the run's log file, not the console.

While a ``RunLog`` is active, Python warnings (e.g. diffusers' FutureWarnings), the loggers of
transformers and diffusers (tokenizer warnings among them), LyCORIS's INFO lines and anything
else that uses ``logging`` are written to one file (``results/<run>/run.log``); the console
keeps t2i-bench's own progress bars and summary. ``verbose`` echoes the same records to the
console as well (``t2i-bench run CONFIG --verbose``).

Records from before the file is known (``RunLog()`` then ``to_file(path)``) are buffered and
written first. transformers and diffusers give their loggers a console handler when their
``utils.logging`` module is first used: it is removed as soon as that module is imported
(through their public ``disable_default_handler``/``enable_propagation``), whenever that
happens, so nothing is imported here. LyCORIS adds its console handler at import only to a
logger without handlers, so it is given this log's handlers first.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

LOG_NAME = "run.log"  # in the run's output folder
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ROUTED_MODULES = ("transformers.utils.logging", "diffusers.utils.logging")
_OWN_HANDLER_LOGGERS = ("LyCORIS",)  # libraries that never propagate to the root logger


def _route(module: ModuleType) -> None:
    """Drop a Hugging Face library's console handler; let its records reach the root."""
    module.disable_default_handler()
    module.enable_propagation()


class _RouteOnImport(importlib.abc.MetaPathFinder):
    """Calls ``_route`` on a module of ``_ROUTED_MODULES`` right after it is imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _ROUTED_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RoutingLoader(spec.loader)
        return spec


class _RoutingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        _route(module)


class _Buffer(logging.Handler):
    """Keeps records until the log file is known."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class RunLog:
    """Send warnings and library logs to a file while active (a context manager)."""

    def __init__(
        self, path: Path | None = None, verbose: bool = False, console: Any = None
    ) -> None:
        self.path: Path | None = None
        self.verbose = verbose
        self.console = console
        self._handlers: list[logging.Handler] = []
        self._buffer: _Buffer | None = None
        self._finder = _RouteOnImport()
        self._root_level = logging.getLogger().level
        self._pending_path = path

    def __enter__(self) -> RunLog:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its fork warning
        logging.captureWarnings(True)
        logging.getLogger().setLevel(logging.INFO)
        sys.meta_path.insert(0, self._finder)
        for name in _ROUTED_MODULES:
            if name in sys.modules:
                _route(sys.modules[name])
        for name in _OWN_HANDLER_LOGGERS:
            library = logging.getLogger(name)
            for handler in list(library.handlers):
                if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler
                ):
                    library.removeHandler(handler)
        if self.verbose:
            from rich.logging import RichHandler

            self._add(RichHandler(console=self.console, show_path=False, markup=False))
        if self._pending_path is not None:
            self.to_file(self._pending_path)
        else:
            self._buffer = _Buffer()
            self._add(self._buffer)
        return self

    def to_file(self, path: Path) -> Path:
        """Write everything logged so far, and from now on, to ``path`` (appended)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(FORMAT))
        self._add(handler)
        if self._buffer is not None:
            for record in self._buffer.records:
                handler.handle(record)
            self._remove(self._buffer)
            self._buffer = None
        self.path = path
        return path

    def _add(self, handler: logging.Handler) -> None:
        self._handlers.append(handler)
        logging.getLogger().addHandler(handler)
        for name in _OWN_HANDLER_LOGGERS:
            logging.getLogger(name).addHandler(handler)

    def _remove(self, handler: logging.Handler) -> None:
        self._handlers.remove(handler)
        logging.getLogger().removeHandler(handler)
        for name in _OWN_HANDLER_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        handler.close()

    def __exit__(self, *exc: object) -> None:
        for handler in list(self._handlers):
            self._remove(handler)
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        logging.captureWarnings(False)
        logging.getLogger().setLevel(self._root_level)

"""Plugins from installed packages, through entry points.

A package adds metrics or backbones by declaring entry points in the groups
``t2i_bench.metrics`` and ``t2i_bench.backbones``. Each entry point names a module (importing
it registers its plugins with ``@register_metric`` / ``@register_backbone``) or a metric class
(registered when loaded). See docs/architecture.md for a worked example.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from t2i_bench.errors import BenchError


def load_entry_points(group: str) -> list[Any]:
    """Load every entry point of ``group``; a plugin that fails to import is one line naming it."""
    loaded = []
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            obj = entry.load()
        except Exception as exc:
            package = entry.dist.name if entry.dist is not None else "an installed package"
            raise BenchError(
                f"plugin {entry.name!r} ({entry.value}) from {package} failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _register_class(group, obj)
        loaded.append(obj)
    return loaded


def _register_class(group: str, obj: Any) -> None:
    """A metric class given directly by an entry point is registered (once)."""
    if group != "t2i_bench.metrics" or not isinstance(obj, type):
        return
    from t2i_bench.metrics.base import _REGISTRY, Metric, register_metric

    if issubclass(obj, Metric) and _REGISTRY.get(obj.name) is not obj:
        register_metric(obj)

"""Fault injection for crash tests: ``T2I_BENCH_KILL_AT=point:n`` makes the process SIGKILL
itself right after the n-th time it passes ``point`` (e.g. ``image:5``, ``score:2``).

It is how the kill tests stop a run at exact places in every stage; unset, it costs one
dictionary lookup per call.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def checkpoint(point: str) -> None:
    """Count a pass through ``point``; die here if the environment asks for it."""
    target = os.environ.get("T2I_BENCH_KILL_AT")
    if not target:
        return
    name, _, count = target.partition(":")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)

"""Seeded percentile bootstrap for the mean, vectorised with numpy."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

#: Bootstrap index matrices are drawn in chunks of at most this many entries.
_CHUNK_ENTRIES = 4_000_000


def group_seed(seed: int, key: Sequence[object]) -> list[int]:
    """Seed material for one group: the user seed and a stable hash of the group key.

    Each group gets its own stream, so a group's interval does not change when other
    checkpoints or metrics are added to the table.
    """
    text = "\x1f".join(str(k) for k in key).encode("utf-8")
    return [int(seed), zlib.crc32(text)]


def bootstrap_mean_ci(
    values: np.ndarray, *, n_boot: int, ci: float, seed: Sequence[int] | int
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of ``values`` (NaN-free, 1-D).

    Returns ``(mean, low, high)``; an empty input gives NaNs, a single value gives that
    value for all three.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(values.mean())
    if n == 1 or np.all(values == values[0]):
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ENTRIES // n)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (mean, float(low), float(high))

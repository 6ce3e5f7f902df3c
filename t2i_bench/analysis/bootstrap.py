"""Seeded percentile bootstrap for the mean, vectorised with numpy."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

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


#: Replicates of the bootstrap over a group's images that every set metric stores with its
#: value at score time (``metrics/score.py``), and the paired comparisons use.
GROUP_REPLICATES = 200
#: Seed of those replicates' resampling plans (with the concept and prompt type).
GROUP_BOOTSTRAP_SEED = 0
#: Version of the resampling scheme (part of a set value's identity).
GROUP_BOOTSTRAP_SCHEME = "prompts-then-seeds/1"


@dataclass(frozen=True)
class ResamplePlan:
    """Bootstrap resamples of a group's images, as counts.

    ``prompts`` are the group's distinct prompts (sorted), ``strata[p]`` the positions of
    prompt p's images in the group (sorted by seed), ``prompt_weights[b, p]`` how often
    resample b drew prompt p, ``weights[b, i]`` how often it drew image i.
    """

    prompts: tuple[str, ...]
    strata: tuple[np.ndarray, ...]
    prompt_weights: np.ndarray
    weights: np.ndarray

    @property
    def n_boot(self) -> int:
        return int(self.weights.shape[0])

    def indices(self, b: int) -> np.ndarray:
        """Resample b as image positions (a drawn image repeated as often as drawn)."""
        return np.repeat(np.arange(self.weights.shape[1]), self.weights[b].astype(np.int64))

    @property
    def balanced(self) -> bool:
        """Whether every resample has as many images as the group."""
        return bool(np.all(self.weights.sum(axis=1) == self.weights.shape[1]))


def resample_plan(
    prompts: Sequence[object],
    seeds: Sequence[object],
    *,
    n_boot: int = GROUP_REPLICATES,
    key: Sequence[object] = (),
    seed: int = GROUP_BOOTSTRAP_SEED,
) -> ResamplePlan:
    """Two-stage bootstrap of the images of a group, identified by (prompt, seed).

    Stage 1 draws the group's prompts with replacement (when it has two or more); stage 2
    draws, for every prompt drawn, its images with replacement (when it has two or more):
    the value's spread over prompts of this kind and over seeds.

    The plan depends only on the (prompt, seed) cells, ``key`` (the concept and prompt type)
    and ``seed``: every checkpoint that rendered the same cells gets the same draws, cell by
    cell, so resample b of two checkpoints is a *paired* resample.
    """
    cells = [(str(p), str(s)) for p, s in zip(prompts, seeds, strict=True)]
    n = len(cells)
    names = tuple(sorted({p for p, _ in cells}))
    strata = tuple(
        np.asarray(sorted((i for i in range(n) if cells[i][0] == name), key=lambda i: cells[i]))
        for name in names
    )
    n_prompts = len(names)
    weights = np.zeros((n_boot, n), dtype=np.float64)
    prompt_weights = np.ones((n_boot, n_prompts), dtype=np.float64)
    if n == 0:
        return ResamplePlan(names, strata, prompt_weights, weights)
    rng = np.random.default_rng(group_seed(seed, key))
    if n_prompts > 1:
        drawn = rng.integers(0, n_prompts, size=(n_boot, n_prompts))
    else:
        drawn = np.zeros((n_boot, 1), dtype=np.int64)
    prompt_weights = resample_counts(drawn, n_prompts)
    sizes = np.array([len(m) for m in strata])
    padded = np.zeros((n_prompts, sizes.max()), dtype=np.int64)
    for p, members in enumerate(strata):
        padded[p, : len(members)] = members
    rows = np.arange(n_boot)
    for slot in range(drawn.shape[1]):
        chosen = drawn[:, slot]
        size = sizes[chosen]
        picks = np.floor(rng.random((n_boot, sizes.max())) * size[:, None]).astype(np.int64)
        images = padded[chosen[:, None], picks]
        used = np.arange(sizes.max())[None, :] < size[:, None]
        np.add.at(weights, (np.broadcast_to(rows[:, None], images.shape)[used], images[used]), 1)
    return ResamplePlan(names, strata, prompt_weights, weights)


def resample_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """``(n_boot, n)`` counts: how often each of n items appears in each row of ``draws``."""
    rows = np.repeat(np.arange(draws.shape[0]), draws.shape[1])
    counts = np.zeros((draws.shape[0], n), dtype=np.float64)
    np.add.at(counts, (rows, draws.reshape(-1)), 1.0)
    return counts


def centred(value: float, replicates: np.ndarray) -> np.ndarray:
    """Replicates shifted so that their mean is ``value`` (NaN replicates stay NaN).

    Resampling with replacement duplicates images, which moves some statistics on its own
    (a duplicated image lowers a diversity and raises FID); the shift removes that bootstrap
    bias estimate so the interval describes the spread around the value itself. For a mean
    the shift is ~0.
    """
    reps = np.asarray(replicates, dtype=np.float64)
    finite = reps[np.isfinite(reps)]
    if finite.size == 0 or not np.isfinite(value):
        return np.full_like(reps, np.nan)
    return reps + (float(value) - float(finite.mean()))


def replicate_interval(
    value: float, replicates: np.ndarray, ci: float = 0.95, min_share: float = 0.9
) -> tuple[float, float]:
    """Percentile interval of the :func:`centred` replicates; NaN when fewer than
    ``min_share`` of them are finite."""
    reps = centred(value, replicates)
    finite = reps[np.isfinite(reps)]
    if reps.size == 0 or finite.size < min_share * reps.size:
        return (np.nan, np.nan)
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return (float(min(low, value)), float(max(high, value)))

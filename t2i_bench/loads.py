"""Counts of models loaded in this process, by kind ("pipeline", "backbone"): tests assert
that a fully cached rerun loads none."""

from __future__ import annotations

from collections import Counter

MODEL_LOADS: Counter[str] = Counter()


def count_load(kind: str) -> None:
    MODEL_LOADS[kind] += 1

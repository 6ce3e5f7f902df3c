"""Metric plugins: interfaces, the data a metric sees, and the registry.

A metric never loads a model: it reads embeddings that the embed stage computed once per
image per backbone. Two kinds, as in HELM: per-image metrics (a value per image) and set
metrics (one value per group of images, maybe against a reference set).
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from t2i_bench.concepts import Concept
from t2i_bench.errors import BenchError

SET_ITEM = "*"  # the item name of a set metric's single value


@dataclass
class Group:
    """The images of one (checkpoint, concept, prompt type), in a stable order."""

    checkpoint: str
    concept: Concept
    prompt_type: str
    image_keys: list[str]
    image_shas: list[str]
    prompts: list[str]
    seeds: list[int]
    base_shas: list[str | None]  # the base model's image for the same prompt and seed
    plain_base_shas: list[str | None]  # the base's image for the prompt without the concept
    reference_shas: list[str]
    features: Callable[[str, list[str]], np.ndarray] = field(repr=False)
    text_features: Callable[[str, list[str]], np.ndarray] = field(repr=False)
    backbone: Callable[[str], Any] = field(repr=False, default=None)  # role -> Backbone
    templates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings metrics raise about their values

    def image_features(self, role: str) -> np.ndarray:
        return self.features(role, self.image_shas)

    def reference_features(self, role: str) -> np.ndarray:
        return self.features(role, self.reference_shas)

    def by_prompt(self) -> list[list[int]]:
        """Indices of the group's images, one list per prompt (in order of appearance)."""
        index: dict[str, list[int]] = {}
        for i, prompt in enumerate(self.prompts):
            index.setdefault(prompt, []).append(i)
        return list(index.values())

    def paired_base(self) -> tuple[list[int], list[str]]:
        """Indices of images that have a base-model twin, and the twins' shas."""
        index = [i for i, sha in enumerate(self.base_shas) if sha is not None]
        return index, [self.base_shas[i] for i in index]  # type: ignore[misc]


class Metric(ABC):
    """A metric plugin. Subclasses set the class attributes and implement ``compute``."""

    name: str = ""
    version: str = "1"
    higher_is_better: bool = True
    backbone: str | None = None  # backbone role: clip, dino, inception, lpips, vgg, …
    head: str | None = None  # a head applied to the backbone's cached embeddings (heads.py)
    prompt_types: tuple[str, ...] = ()
    kind: str = "set"  # "image" or "set"
    needs_text: bool = False
    needs_base: bool = False
    convention: str = ""
    description: str = ""
    baseline: str = "none"  # reference-vs-reference context: "split" halves, "all", or "none"

    def texts(self, group: Group) -> list[str]:
        """Texts this metric embeds for ``group`` (text-image metrics only)."""
        return []

    @abstractmethod
    def compute(self, group: Group) -> dict[str, float]:
        """item -> value: image key -> value for per-image metrics, ``SET_ITEM`` for sets."""


_REGISTRY: dict[str, type[Metric]] = {}


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator; a duplicate name is a programming error."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"metric name {cls.name!r} missing or registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_metrics() -> dict[str, type[Metric]]:
    import t2i_bench.metrics.plugins  # noqa: F401  (registers the built-in metrics)

    return dict(sorted(_REGISTRY.items()))


def get_metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name fails with the close matches."""
    known = available_metrics()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
        raise BenchError(f"unknown metric {name!r}{hint}")
    return known[name]()

"""Heads: small models a metric applies to a backbone's cached embeddings.

Some published metrics are a small head on the embeddings of a backbone the suite already
runs (the LAION aesthetic predictor is an MLP on CLIP ViT-L/14 image embeddings). A head
never sees an image, so "one forward per image per backbone" holds: the metric reads the
backbone's stored embeddings and applies the head when scoring. A head names the backbone
whose embeddings it was trained on (``backbone``), so it can never be applied to another
model's features; its ``identity`` (name, profile, version, that backbone, and the sha256 of
its weights) joins the identity of every value computed with it.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from t2i_bench.errors import BenchError


class Head(ABC):
    """A model on embeddings. Subclasses set the attributes and implement ``apply``."""

    name: str = ""
    version: str = "1"
    backbone: str = ""  # the backbone (by name) whose image embeddings the head reads
    profile: str = "tiny"
    weights: str = ""  # e.g. "sha256:<hex>" of the weights file, or "seed=<n>" (tiny)

    @property
    def identity(self) -> str:
        return f"{self.name}|{self.profile}|v{self.version}|on:{self.backbone}|{self.weights}"

    @abstractmethod
    def apply(self, features: np.ndarray) -> np.ndarray:
        """(n,) float64 outputs for (n, d) embeddings of :attr:`backbone`."""


HeadFactory = Callable[..., Head]
HeadIdentity = Callable[[str], str]  # profile -> the identity a loaded head would have
_REGISTRY: dict[str, HeadFactory] = {}
_IDENTITIES: dict[str, HeadIdentity] = {}


def register_head(name: str, identity: HeadIdentity) -> Callable[[HeadFactory], HeadFactory]:
    """Register a head factory ``(profile, device, **options) -> Head`` under ``name``, with
    a function that knows its identity without loading it (so cached values load nothing)."""

    def wrap(factory: HeadFactory) -> HeadFactory:
        if name in _REGISTRY:
            raise ValueError(f"head {name!r} registered twice")
        _REGISTRY[name] = factory
        _IDENTITIES[name] = identity
        return factory

    return wrap


def head_identity(name: str, profile: str = "tiny") -> str:
    """The identity of head ``name`` for ``profile``, without loading it."""
    import t2i_bench.backbones  # noqa: F401  (registers the built-in heads)

    if name not in _IDENTITIES:
        raise BenchError(f"unknown head {name!r}; known: {', '.join(sorted(_IDENTITIES))}")
    return _IDENTITIES[name](profile)


@functools.lru_cache(maxsize=16)
def load_head(name: str, profile: str = "tiny", device: str = "cpu") -> Head:
    """The head ``name`` for ``profile`` (built once per process; heads are small)."""
    import t2i_bench.backbones  # noqa: F401  (registers the built-in heads)

    if name not in _REGISTRY:
        raise BenchError(f"unknown head {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](profile, device)


def available_heads() -> list[str]:
    import t2i_bench.backbones  # noqa: F401

    return sorted(_REGISTRY)

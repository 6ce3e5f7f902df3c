"""The backbone interface: a model that turns images (and maybe texts) into feature vectors.

A backbone never decides what a metric means; it only embeds. Its ``identity`` (name,
profile, preprocessing, version) is part of every cached embedding's key, so changing the
preprocessing can never silently reuse stale features.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from t2i_bench.errors import BenchError


class Backbone(ABC):
    """A feature extractor. Subclasses set the class attributes and implement ``embed_images``."""

    name: str = ""
    version: str = "1"
    preprocessing: str = ""  # human-readable description of the preprocessing, part of identity
    profile: str = "tiny"  # "tiny" or "real"
    forward_calls: int = 0  # counts batched image forwards (tests assert one pass per image)

    @property
    def identity(self) -> str:
        """Everything that determines an embedding besides the image itself."""
        return f"{self.name}|{self.profile}|{self.preprocessing}|v{self.version}"

    @abstractmethod
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return an (n, d) float32 array of image features (not normalised)."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, d) float32 array of text features; only text-image backbones have it."""
        raise BenchError(f"backbone {self.name} has no text encoder")


# (profile, device, **options) -> Backbone; options are backbone-specific (batch_size, weights path)
BackboneFactory = Callable[..., Backbone]
_REGISTRY: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register a factory under ``name``; a duplicate name is a programming error."""

    def wrap(factory: BackboneFactory) -> BackboneFactory:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def load_backbone(
    name: str, profile: str = "tiny", device: str = "cpu", **options: object
) -> Backbone:
    """Build the backbone ``name`` for ``profile`` (``tiny`` or ``real``).

    ``options`` go to the factory unchanged (e.g. ``batch_size``, ``weights`` for a local path).
    """
    import t2i_bench.backbones  # noqa: F401  (registers the built-in backbones)

    if name not in _REGISTRY:
        raise BenchError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](profile, device, **options)


def available_backbones() -> list[str]:
    import t2i_bench.backbones  # noqa: F401

    return sorted(_REGISTRY)

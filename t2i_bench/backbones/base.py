"""The backbone interface: a model that turns images (and maybe texts) into feature vectors.

A backbone never decides what a metric means; it only embeds. Every registered backbone has
two parts:

- ``describe(profile, **options) -> BackboneSpec``: static and cheap. It names the weight files
  and the settings that determine an embedding (architecture, preprocessing, version) without
  loading any model, so a cached rerun and the Ray driver know every backbone's identity for
  free. Missing weights are found here, as one line saying which file to provide.
- the factory ``(profile, device, **options) -> Backbone``: loads the model, only when an
  embedding is missing.

A spec's ``identity`` (name, profile, version, settings and a hash of the weight files'
contents) is part of every cached embedding's key, so new weights or a new preprocessing can
never silently reuse stale features.
"""

from __future__ import annotations

import difflib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from t2i_bench.errors import BenchError
from t2i_bench.hashing import file_sha256, stable_hash
from t2i_bench.loads import count_load

ENTRY_POINT_GROUP = "t2i_bench.backbones"


@dataclass(frozen=True)
class BackboneSpec:
    """What determines a backbone's embeddings, known without loading it."""

    name: str
    profile: str  # "tiny" or "real"
    version: str  # bump when the embedding code changes
    architecture: str  # human-readable, e.g. "open_clip ViT-L-14"
    preprocessing: str  # human-readable description of the eval preprocessing
    weights: str  # human-readable: a published tag/hub id, local path, or "seed=<n>" (tiny)
    weight_files: tuple[str, ...] = ()  # files whose contents are the weights (and configs)
    settings: dict[str, Any] = field(default_factory=dict)  # other static facts that matter
    description: str = ""
    # Large embeddings needed only to compute metric values (spatial LPIPS features, Gram
    # matrices, ImageReward's image tokens): a run drops those of generated images once every
    # value that reads them is stored, and embeds them again only if a value must be
    # recomputed. Not part of the identity: it changes where features live, not what they are.
    transient: bool = False

    @property
    def identity(self) -> str:
        """Name, profile, version and a hash of settings, preprocessing and weight contents.

        The weight files count by content, in the describer's order, never by path: the same
        files in another folder (or on another machine) give the same identity. Hashes of
        large files are cached across processes (:func:`t2i_bench.hashing.file_sha256`)."""
        contents = [file_sha256(Path(p)) for p in self.weight_files]
        digest = stable_hash(
            {
                "architecture": self.architecture,
                "preprocessing": self.preprocessing,
                "weights": self.weights if not contents else contents,
                "settings": self.settings,
            },
            16,
        )
        return f"{self.name}|{self.profile}|v{self.version}|{digest}"


class Backbone(ABC):
    """A feature extractor. Subclasses set the class attributes and implement ``embed_images``."""

    name: str = ""
    version: str = "1"
    preprocessing: str = ""  # human-readable description of the preprocessing
    profile: str = "tiny"  # "tiny" or "real"
    forward_calls: int = 0  # counts batched image forwards (tests assert one pass per image)
    spec: BackboneSpec | None = None  # set by load_backbone

    @property
    def identity(self) -> str:
        """Everything that determines an embedding besides the image itself."""
        if self.spec is not None:
            return self.spec.identity
        return f"{self.name}|{self.profile}|{self.preprocessing}|v{self.version}"

    @abstractmethod
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return an (n, d) float32 array of image features (not normalised)."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, d) float32 array of text features; only text-image backbones have it."""
        raise BenchError(f"backbone {self.name} has no text encoder")


# (profile, device, **options) -> Backbone; options are backbone-specific (batch_size, weights)
BackboneFactory = Callable[..., Backbone]
# (profile, **options) -> BackboneSpec, without loading anything
BackboneDescriber = Callable[..., BackboneSpec]


@dataclass(frozen=True)
class _Entry:
    factory: BackboneFactory
    describe: BackboneDescriber | None


_REGISTRY: dict[str, _Entry] = {}
_PLUGINS_LOADED = False


def register_backbone(
    name: str, describe: BackboneDescriber | None = None
) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register a factory (and its static describer) under ``name``; a duplicate name is a
    programming error."""

    def wrap(factory: BackboneFactory) -> BackboneFactory:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = _Entry(factory, describe)
        return factory

    return wrap


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import t2i_bench.backbones  # noqa: F401  (registers the built-in backbones)
    from t2i_bench.plugins import load_entry_points

    load_entry_points(ENTRY_POINT_GROUP)


def _entry(name: str) -> _Entry:
    _load_plugins()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(_REGISTRY)}"
        raise BenchError(f"unknown backbone {name!r}; {hint}")
    return _REGISTRY[name]


def _check_options(name: str, func: Callable[..., Any], options: dict[str, object]) -> None:
    """One line naming the options backbone ``name`` does not take (e.g. a config typo)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a callable without a signature: let it decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    takes = [p for p in params if p not in ("profile", "device", "batch_size")]
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise BenchError(
            f"backbone {name} has no option {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(takes) or 'none'}"
        )


def describe_backbone(name: str, profile: str = "tiny", **options: object) -> BackboneSpec:
    """The static spec of backbone ``name``: no model is loaded. A backbone registered without
    a describer is loaded once to learn it (third-party plugins may do that). ``batch_size``
    is accepted and ignored (it does not change embeddings)."""
    entry = _entry(name)
    options = {k: v for k, v in options.items() if k != "batch_size"}
    if entry.describe is not None:
        _check_options(name, entry.describe, options)
        return entry.describe(profile, **options)
    spec = load_backbone(name, profile, "cpu", **options).spec
    assert spec is not None  # load_backbone always sets it
    return spec


def load_backbone(
    name: str, profile: str = "tiny", device: str = "cpu", **options: object
) -> Backbone:
    """Build the backbone ``name`` for ``profile`` (``tiny`` or ``real``) on ``device``.

    ``options`` go to the factory unchanged (e.g. ``batch_size``, ``weights`` for a local path).
    """
    entry = _entry(name)
    spec = describe_backbone(name, profile, **options) if entry.describe is not None else None
    backbone = entry.factory(profile, device, **options)
    count_load("backbone")
    if spec is None:  # no describer: the loaded model's own identity is the best we know
        legacy = backbone.identity
        spec = BackboneSpec(
            name, profile, backbone.version, type(backbone).__name__, backbone.preprocessing, legacy
        )
    backbone.spec = spec
    return backbone


def available_backbones() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)

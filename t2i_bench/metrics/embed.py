"""The embed stage: every (image, backbone) embedded once, in batches, cached in the store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from t2i_bench.backbones.base import Backbone, load_backbone
from t2i_bench.concepts import Concept
from t2i_bench.config import BackbonesConfig
from t2i_bench.hashing import file_sha256
from t2i_bench.images import open_rgb
from t2i_bench.metrics.base import Metric
from t2i_bench.store import RunStore

Progress = Callable[[str, int, int], None]  # (label, done, total)


@dataclass
class Backbones:
    """Lazily built backbones by role (clip, dino, …), as the config maps them."""

    config: BackbonesConfig
    device: str = "cpu"
    _built: dict[str, Backbone] = field(default_factory=dict)

    def get(self, role: str) -> Backbone:
        if role not in self._built:
            name = getattr(self.config, role, None) or role
            backbone = load_backbone(name, self.config.profile, self.device)
            if hasattr(backbone, "batch_size"):
                backbone.batch_size = self.config.batch_size
            self._built[role] = backbone
        return self._built[role]


def reference_shas(concepts: Iterable[Concept]) -> dict[str, Path]:
    """sha256 of each reference image file -> its path."""
    return {file_sha256(p): p for c in concepts for p in c.image_paths}


def _load_rgb(path: Path) -> Image.Image:
    return open_rgb(path)


def embed_images(
    store: RunStore,
    backbone: Backbone,
    items: dict[str, Path],
    batch_size: int,
    progress: Progress | None = None,
) -> int:
    """Embed the images (sha -> path) not yet cached for ``backbone``; returns how many."""
    todo = sorted(set(items) - store.embedded(backbone.identity))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        features = backbone.embed_images([_load_rgb(items[sha]) for sha in chunk])
        store.put_embeddings(backbone.identity, dict(zip(chunk, features, strict=True)))
        if progress:
            progress(backbone.name, start + len(chunk), len(todo))
    return len(todo)


def embed_texts(store: RunStore, backbone: Backbone, texts: Iterable[str], batch_size: int) -> int:
    """Embed the texts not yet cached for ``backbone``; returns how many."""
    todo = sorted(set(texts) - store.text_embedded(backbone.identity))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        vectors = backbone.embed_texts(chunk)
        store.put_text_embeddings(backbone.identity, dict(zip(chunk, vectors, strict=True)))
    return len(todo)


def needed_roles(metrics: Iterable[Metric]) -> list[str]:
    return sorted({m.backbone for m in metrics if m.backbone})


def image_files(store: RunStore, keys: Iterable[str]) -> dict[str, Path]:
    """sha256 -> path of the stored images with these keys."""
    rows = store.image_rows()
    return {rows[k][1]: store.root / rows[k][0] for k in keys if k in rows}


def features_reader(
    store: RunStore, backbones: Backbones
) -> Callable[[str, list[str]], np.ndarray]:
    def read(role: str, shas: list[str]) -> np.ndarray:
        return store.get_embeddings(backbones.get(role).identity, shas)

    return read

"""The embed stage: every (image, backbone) a metric reads embedded once, in batches, cached.

Backbones are known by role (clip, dino, …) through the config. A role's identity comes from
its backbone's static spec, so nothing is loaded unless an embedding is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from t2i_bench.backbones.base import Backbone, BackboneSpec, describe_backbone, load_backbone
from t2i_bench.backbones.heads import Head, load_head
from t2i_bench.concepts import Concept
from t2i_bench.config import BackbonesConfig
from t2i_bench.errors import BenchError
from t2i_bench.hashing import file_sha256
from t2i_bench.images import open_rgb
from t2i_bench.metrics.base import Group, Metric
from t2i_bench.store import RunStore

Progress = Callable[[str, int, int], None]  # (label, done, total)


@dataclass
class Backbones:
    """Backbones by role (clip, dino, …) as the config maps them: specs on demand, models
    loaded lazily, each at most once."""

    config: BackbonesConfig
    device: str = "cpu"
    _built: dict[str, Backbone] = field(default_factory=dict)
    _specs: dict[str, BackboneSpec] = field(default_factory=dict)

    def spec(self, role: str) -> BackboneSpec:
        if role not in self._specs:
            name, options = self.config.role(role)
            self._specs[role] = describe_backbone(name, self.config.profile, **options)
        return self._specs[role]

    def identity(self, role: str) -> str:
        """The key of ``role``'s embeddings: its backbone's identity and the batch size every
        embedding batch is padded to (batched kernels round differently at another size)."""
        return f"{self.spec(role).identity}|batch={self.config.batch_size}"

    def get(self, role: str) -> Backbone:
        """The loaded backbone of ``role`` (loaded on first use)."""
        if role not in self._built:
            name, options = self.config.role(role)
            same = [r for r in self._built if self.config.role(r) == (name, options)]
            backbone = (  # one model per backbone and options, whatever role it plays
                self._built[same[0]]
                if same
                else load_backbone(name, self.config.profile, self.device, **options)
            )
            if hasattr(backbone, "batch_size"):
                backbone.batch_size = self.config.batch_size
            self._built[role] = backbone
        return self._built[role]

    def head(self, name: str, role: str) -> Head:
        """Head ``name`` for the embeddings of ``role``; refused when the role's backbone is
        not the one the head was trained on."""
        head = load_head(name, self.config.profile, self.device)
        backbone = self.config.role(role)[0]
        if head.backbone != backbone:
            raise BenchError(f"{name} reads {head.backbone} embeddings, but {role} is {backbone}")
        return head

    @property
    def built(self) -> dict[str, Backbone]:
        """The roles loaded so far."""
        return dict(self._built)


def reference_shas(concepts: Iterable[Concept]) -> dict[str, Path]:
    """sha256 of each reference image file -> its path."""
    return {file_sha256(p): p for c in concepts for p in c.image_paths}


def _load_rgb(path: Path) -> Image.Image:
    return open_rgb(path)


def embedding_needs(
    groups: list[Group],
    metrics: list[Metric],
    base_name: str,
    pending: Callable[[Metric, Group], bool] | None = None,
) -> dict[str, set[str]]:
    """role -> the image shas some metric reads with it: the groups' own images, the image
    variants and reference images the metrics declare, and the reference images of metrics
    with a reference-vs-reference baseline. With ``pending``, only the (metric, group) pairs
    it accepts count (those whose values are not stored yet)."""
    needs: dict[str, set[str]] = {}
    for metric in metrics:
        for group in groups:
            if not metric.applies_to(group, base_name):
                continue
            if pending is not None and not pending(metric, group):
                continue
            view = group.for_metric(metric)
            shas = set(view.image_shas) | set(view.reference_shas)
            for variant in view.variants.values():
                shas.update(s for s in variant if s is not None)
            for role in metric.roles:
                needs.setdefault(role, set()).update(shas)
        if metric.baseline != "none":
            refs = {s for g in groups for s in g.reference_shas}
            for role in metric.roles:
                needs.setdefault(role, set()).update(refs)
    return needs


def embed_texts(
    store: RunStore, backbones: Backbones, role: str, texts: Iterable[str], batch_size: int
) -> int:
    """Embed the texts not yet cached for ``role`` (loading its backbone only if some are
    missing); returns how many."""
    todo = sorted(set(texts) - store.text_embedded(backbones.identity(role)))
    if not todo:
        return 0
    backbone, identity = backbones.get(role), backbones.identity(role)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        vectors = backbone.embed_texts(chunk)
        store.put_text_embeddings(identity, dict(zip(chunk, vectors, strict=True)))
    return len(todo)


def features_reader(
    store: RunStore, backbones: Backbones
) -> Callable[[str, list[str]], np.ndarray]:
    def read(role: str, shas: list[str]) -> np.ndarray:
        return store.get_embeddings(backbones.identity(role), shas)

    return read

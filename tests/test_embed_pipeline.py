"""The embed stage's pipeline: each image decoded once for every backbone, decoding and
forward passes beside the store writes, and the same features as embedding in series."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i_bench import executors
from t2i_bench.config import BackbonesConfig
from t2i_bench.executors import LocalExecutor, embed_schedule, pipelined
from t2i_bench.hashing import file_sha256
from t2i_bench.metrics.embed import Backbones

ROLES = ("clip", "dino", "lpips", "vgg")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    files = {}
    for i in range(11):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        files[file_sha256(path)] = path
    return files


def _work(images: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """Overlapping but different image sets per role (as metrics ask for them)."""
    shas = sorted(images)
    return {
        "clip": {s: images[s] for s in shas},
        "dino": {s: images[s] for s in shas[2:]},
        "lpips": {s: images[s] for s in shas[::2]},
        "vgg": {s: images[s] for s in shas[5:8]},
    }


def test_schedule_keeps_each_roles_sorted_chunks() -> None:
    work = {"b": {s: Path(s) for s in "fedcba"}, "a": {s: Path(s) for s in "ace"}}
    schedule = embed_schedule(work, 2)
    by_role: dict[str, list] = {}
    for role, shas in schedule:
        by_role.setdefault(role, []).append(shas)
    assert by_role == {"a": [("a", "c"), ("e",)], "b": [("a", "b"), ("c", "d"), ("e", "f")]}
    assert [shas[-1] for _, shas in schedule] == sorted(shas[-1] for _, shas in schedule)


def test_features_equal_embedding_each_role_in_series(images, monkeypatch) -> None:
    work = _work(images)
    decoded: list[Path] = []
    real = executors._decode
    monkeypatch.setattr(executors, "_decode", lambda data: decoded.append(data) or real(data))
    backbones = Backbones(BackbonesConfig(batch_size=4))
    got: dict[str, dict[str, np.ndarray]] = {role: {} for role in work}
    for role, shas, features in LocalExecutor().embed(backbones, work, 4):
        got[role].update(zip(shas, features, strict=True))
    assert len(decoded) == len(images)  # each image read and decoded once, for every role
    for role in ROLES:  # the reference: the role's sorted images in chunks of 4, in series
        backbone = backbones.get(role)
        shas = sorted(work[role])
        for start in range(0, len(shas), 4):
            chunk = shas[start : start + 4]
            rgb = [Image.open(work[role][s]).convert("RGB") for s in chunk]
            expected = backbone.embed_images(rgb)
            assert np.array_equal(np.stack([got[role][s] for s in chunk]), expected), role
    serial = LocalExecutor(overlap=False).embed(backbones, work, 4)
    for role, shas, features in serial:
        assert np.array_equal(np.stack([got[role][s] for s in shas]), features)


def test_nothing_to_embed_loads_nothing(images) -> None:
    backbones = Backbones(BackbonesConfig())
    assert list(LocalExecutor().embed(backbones, {"clip": {}, "dino": {}}, 4)) == []
    assert backbones.built == {}


def test_pipelined_keeps_order_raises_and_stops() -> None:
    def slow_square(x: int) -> int:
        time.sleep(0.001 * (x % 3))
        return x * x

    assert list(pipelined(range(50), slow_square, lambda x: x + 1)) == [
        x * x + 1 for x in range(50)
    ]

    def boom(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    with pytest.raises(ValueError, match="seven"):
        list(pipelined(range(20), boom))

    def broken_source():
        yield 1
        raise OSError("unreadable")

    with pytest.raises(OSError, match="unreadable"):
        list(pipelined(broken_source(), lambda x: x))
    before = threading.active_count()
    stream = pipelined(iter(range(10_000)), lambda x: x)
    assert next(stream) == 0
    stream.close()  # an early stop joins its threads
    assert threading.active_count() == before

"""The demo CLIP (backbone ``clip_demo``): the tiny CLIP pretrained on the procedural world,
committed as a small file with a static identity, and able to read what the demo's prompts
ask for (where the random tiny CLIP cannot)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from t2i_bench.backbones.base import describe_backbone, load_backbone
from t2i_bench.demo.clip_pretrain import (
    CLIP_FILE,
    clip_metadata,
    load_clip,
    model_state,
    state_sha256,
)
from t2i_bench.demo.procedural import COLOURS, SHAPES, caption, shape_image
from t2i_bench.errors import BenchError

REPO = Path(__file__).resolve().parents[1]


def test_committed_file_is_small_and_loads_the_trained_weights() -> None:
    assert CLIP_FILE.stat().st_size < 2 * 2**20
    metadata = clip_metadata()
    model = load_clip()  # raises unless the loaded weights hash to the recorded value
    assert state_sha256(model_state(model)) == metadata["state_sha256"]


def test_static_identity_from_the_file_header(monkeypatch) -> None:
    from t2i_bench.loads import MODEL_LOADS

    before = MODEL_LOADS["backbone"]
    spec = describe_backbone("clip_demo", "tiny")
    assert spec.settings["weights_sha256"] == clip_metadata()["state_sha256"]
    assert MODEL_LOADS["backbone"] == before  # nothing was loaded
    backbone = load_backbone("clip_demo", "tiny")
    assert backbone.identity == spec.identity and backbone.preprocessing == spec.preprocessing
    # other trained weights, another identity
    import t2i_bench.demo.clip_pretrain as cp

    monkeypatch.setattr(cp, "clip_metadata", lambda path=None: {"state_sha256": "0" * 64})
    assert describe_backbone("clip_demo", "tiny").identity != spec.identity


def test_real_profile_is_refused_in_one_line() -> None:
    with pytest.raises(BenchError, match="demo's pretrained tiny CLIP: use it with the 'tiny'"):
        describe_backbone("clip_demo", "real")


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    stored = load_file(str(CLIP_FILE))
    key = next(k for k in stored if k.endswith("proj") or "proj" in k)
    stored[key] = stored[key] + 1e-3
    bad = tmp_path / "clip_demo.safetensors"
    save_file(stored, str(bad), metadata=clip_metadata())
    with pytest.raises(BenchError, match="does not reproduce the trained weights"):
        load_clip(bad)


def _held_out(n: int, seed: int) -> tuple[list, list[str], list[tuple[str, str, str]]]:
    rng = random.Random(seed)
    names = sorted(COLOURS)
    images, texts, labels = [], [], []
    for _ in range(n):
        shape = rng.choice(sorted(SHAPES))
        colour, background = rng.sample(names, 2)
        images.append(shape_image(shape, colour, background, rng))
        texts.append(caption(shape, colour, background))
        labels.append((shape, colour, background))
    return images, texts, labels


@pytest.mark.parametrize(
    ("name", "floor", "ceiling"), [("clip_demo", 0.75, 1.0), ("clip_vit_l14", 0.0, 0.2)]
)
def test_it_reads_colours_and_backgrounds(name: str, floor: float, ceiling: float) -> None:
    """Zero-shot through the suite's own backbone code: for held-out procedural images, the
    text with the highest CLIP score names the right colour and background (of 56 pairs) for
    at least 75% of images with the demo CLIP (measured: 82%); the random tiny CLIP is near
    chance."""
    backbone = load_backbone(name, "tiny")
    images, _, labels = _held_out(200, seed=999)
    names = sorted(COLOURS)
    pairs = [(c, b) for c in names for b in names if c != b]
    texts = [f"a {c} circle on a {b} background" for c, b in pairs]  # colour words matter
    img = backbone.embed_images(images)
    txt = backbone.embed_texts(texts)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    guess = (img @ txt.T).argmax(axis=1)
    right = np.mean([pairs[g] == (lab[1], lab[2]) for g, lab in zip(guess, labels, strict=True)])
    assert floor <= right <= ceiling, right


@pytest.mark.slow
def test_pretraining_reproduces_the_committed_file() -> None:
    """Seeded and single-threaded: a rebuild gives the committed weights (a few minutes)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = REPO / "scripts" / "build_demo_clip.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches" in result.stdout

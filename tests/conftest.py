"""Shared fixtures. No test may touch the network or need a GPU."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
# the persistent file-hash cache goes to a folder of this test session, never the user's
os.environ["T2I_BENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="t2i-bench-cache-")
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as t2i_bench/threads.py: before torch

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def concept_dir(tmp_path: Path) -> Path:
    """A tiny concept: three coloured 64x64 reference images with captions, and its YAML."""
    return write_concept(tmp_path)


def write_concept(folder: Path, captions: bool = True) -> Path:
    """The ``concept_dir`` concept (``zyx.yaml`` + ``zyx/``) written into ``folder``, for
    fixtures of any scope; ``captions=False`` leaves out the ``.txt`` captions."""
    images = folder / "zyx"
    images.mkdir()
    for i in range(3):
        array = np.zeros((64, 64, 3), np.uint8)
        array[16:48, 16:48, i] = 220
        Image.fromarray(array).save(images / f"img_{i}.png")
        if captions:
            (images / f"img_{i}.txt").write_text(f"a photo of zyx toy, view {i}")
    (folder / "zyx.yaml").write_text(
        "name: zyx\ntrigger: zyx\nclass_word: toy\ncategory: object\nimages: zyx\n"
    )
    return folder


def write_config(folder: Path, extra: str = "", name: str = "cfg.yaml") -> Path:
    """A small run config over the ``concept_dir`` fixture's concept and the tiny base;
    top-level keys in ``extra`` replace the defaults (YAML duplicate keys are refused)."""
    base = (
        "name: t\n"
        "output_dir: out\n"
        "base_model: {source: tiny}\n"
        "sampler: {steps: 3, guidance_scale: 3.0, width: 64, height: 64, batch_size: 4}\n"
        "concepts: [zyx.yaml]\n"
        f"prompts: {{set: {REPO / 'prompts' / 'default.yaml'}, max_per_type: 1}}\n"
        "images_per_prompt: 2\n"
        "metrics: [clip_i, clip_t]\n"
    )
    given = {line.split(":", 1)[0] for line in extra.splitlines() if line[:1].isalpha()}
    kept = [line for line in base.splitlines(True) if line.split(":", 1)[0] not in given]
    text = "".join(kept) + extra
    path = folder / name
    path.write_text(text)
    return path

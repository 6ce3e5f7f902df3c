"""OpenMP threads wait passively (set on import, before torch) and that changes no pixel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

RENDER = """
import hashlib, json, os
import t2i_bench, torch
from t2i_bench.config import SamplerConfig
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.generation.render import render_batch
torch.set_num_threads(2)
pipe = load_base_pipeline("tiny", 0)
sampler = SamplerConfig(steps=3, guidance_scale=4.0, width=64, height=64)
images = render_batch(pipe, ["a photo of zyx toy", "a red circle"] * 2, [0, 1, 2, 3], sampler)
print(json.dumps({
    "policy": os.environ.get("OMP_WAIT_POLICY"),
    "sha": hashlib.sha256(b"".join(im.tobytes() for im in images)).hexdigest(),
}))
"""


def _child(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "PASSIVE"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
        ({"GOMP_SPINCOUNT": "1000"}, None),
    ],
)
def test_import_sets_passive_wait_unless_the_user_chose(env: dict, expected: str | None) -> None:
    code = "import json, os, t2i_bench; print(json.dumps(os.environ.get('OMP_WAIT_POLICY')))"
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == expected


def test_passive_waiting_renders_the_same_pixels() -> None:
    """Same thread count (2), libgomp's default spinning vs passive waiting: same bytes."""
    spinning = _child(RENDER, GOMP_SPINCOUNT="300000")  # libgomp's default, no policy set
    passive = _child(RENDER)
    assert spinning["policy"] is None and passive["policy"] == "PASSIVE"
    assert passive["sha"] == spinning["sha"]

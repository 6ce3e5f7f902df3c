"""The performance harness runs end to end: ``python -m benchmarks --quick --only …`` appends a
result table whose rows carry positive ratios. Performance targets are not asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmarks_append_a_table(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks", "--quick", "--only", "generation"]
    command += ["--only", "switching", "--results", str(results), "--workdir", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    text = results.read_text()
    assert "`python -m benchmarks --quick --only generation --only switching" in text
    assert "- machine: " in text and "- git revision " in text
    for name in ("generation", "switching"):
        row = re.search(rf"^\| {name}: [^|]+\|[^|]+\|[^|]+\| ([0-9.]+) \|", text, re.MULTILINE)
        assert row, f"no {name} row in:\n{text}"
        assert float(row.group(1)) > 0


def test_gpu_rows_skip_without_cuda_and_run_on_a_small_stand_in(tmp_path: Path) -> None:
    """The GPU comparisons say why they skip on a machine without CUDA; their code runs on
    the CPU with small stand-ins of the same SD 1.5 block layout."""
    import pytest
    import torch

    sys.path.insert(0, str(REPO))
    from benchmarks import gpu_generation
    from benchmarks.common import Context, Skipped
    from benchmarks.sd15 import build_sd15_folder
    from t2i_bench.config import SamplerConfig
    from t2i_bench.executors import LocalExecutor
    from t2i_bench.generation.pipeline import load_base_pipeline
    from t2i_bench.generation.worker import PipelineSpec

    ctx = Context(workdir=tmp_path, quick=True)
    if not torch.cuda.is_available():
        with pytest.raises(Skipped, match="no CUDA device"):
            gpu_generation.run(ctx)
    folder = build_sd15_folder(tmp_path / "sd15-small", "cpu", torch.float32, small=True)
    pipe = load_base_pipeline(str(folder))
    assert pipe.tokenizer.model_max_length == 77 and len(pipe.tokenizer) == 49408
    assert list(pipe.unet.config.down_block_types)[0] == "CrossAttnDownBlock2D"
    assert pipe.vae.config.block_out_channels == [32, 32, 64, 64]
    sampler = SamplerConfig(steps=2, guidance_scale=7.5, width=64, height=64, batch_size=3)
    work = gpu_generation.jobs(ctx)
    spec = PipelineSpec(source=str(folder), threads=torch.get_num_threads())
    ours = gpu_generation.ours(LocalExecutor(), spec, sampler, work)
    loop = gpu_generation.plain_loop(pipe, sampler, work)
    assert sorted(ours) == sorted(loop) == sorted(key for key, _, _ in work)
    worst = max(
        int(abs(gpu_generation._pixels(ours[k]) - gpu_generation._pixels(loop[k])).max())
        for k in loop
    )
    assert worst <= 2  # the same images, up to batched float rounding

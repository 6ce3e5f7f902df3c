"""Scale-out on a real local Ray cluster: the same leaderboard as local execution, and a run
that completes when a worker is killed mid-task."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from adapter_files import write_lycoris_file
from conftest import write_config
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.config import SamplerConfig
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.generation.worker import PipelineSpec, Renderer, RenderTask

ray = pytest.importorskip("ray")
os.environ["RAY_AUTH_MODE"] = "disabled"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapters")
    pipe = load_base_pipeline("tiny", seed=0)
    write_lycoris_file(pipe, folder / "a-loha.safetensors", algo="loha", seed=3)
    return folder


def test_ray_leaderboard_equals_local(concept_dir: Path, adapters: Path) -> None:
    config = write_config(concept_dir, f"checkpoints: [{{glob: '{adapters}/*.safetensors'}}]\n")
    runner = CliRunner()
    local = runner.invoke(app, ["run", str(config), "-o", str(concept_dir / "local")])
    assert local.exit_code == 0, local.output
    args = ["run", str(config), "-o", str(concept_dir / "ray"), "--executor", "ray"]
    distributed = runner.invoke(app, [*args, "--workers", "2"])
    assert distributed.exit_code == 0, distributed.output
    assert "rendered 20 images" in distributed.output
    expected = (concept_dir / "local" / "leaderboard.csv").read_bytes()
    assert (concept_dir / "ray" / "leaderboard.csv").read_bytes() == expected
    assert not ray.is_initialized()  # the executor shut down the cluster it started


def test_killed_worker_task_is_retried(adapters: Path) -> None:
    from t2i_bench.executors import RayExecutor

    sampler = SamplerConfig(steps=3, guidance_scale=3.0, width=64, height=64)
    spec = PipelineSpec(source="tiny", threads=1)
    path = str(adapters / "a-loha.safetensors")
    tasks = [
        RenderTask("a", path, 1.0, None, (f"k{i}",), (f"a photo number {i}",), (i,))
        for i in range(8)
    ]
    expected = [Renderer(spec, sampler).run(t).images for t in tasks]
    executor = RayExecutor(spec, sampler, workers=2)
    try:
        pids = executor.worker_pids()
        results = {}
        for n, result in enumerate(executor.render(spec, sampler, tasks)):
            results[result.task.keys[0]] = result.images
            if n == 0:  # a worker dies while the others' tasks are in flight
                os.kill(pids[0], signal.SIGKILL)
                time.sleep(0.5)
        assert sorted(results) == sorted(t.keys[0] for t in tasks)
        assert [results[t.keys[0]] for t in tasks] == expected
        assert executor.worker_pids() != pids  # the killed actor was restarted
    finally:
        executor.close()

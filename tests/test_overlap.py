"""Rendering overlaps PNG encoding and store writes, with the same bytes as in series."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from adapter_files import write_lycoris_file
from conftest import write_config

from t2i_bench import runner
from t2i_bench.executors import LocalExecutor
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.generation.worker import Renderer
from t2i_bench.report.build import write_report


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapters")
    pipe = load_base_pipeline("tiny", seed=0)
    write_lycoris_file(pipe, folder / "zyx-lokr-000001.safetensors", algo="lokr", seed=3)
    return folder


def _render_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "t2i-bench-render"]


def _evaluate(config: Path, output: Path, overlap: bool) -> None:
    run = runner.prepare(config, output_dir=output)
    run.executor = LocalExecutor(overlap=overlap)
    try:
        rendered, failed = runner.generate(run)
        assert rendered == 20 and failed == 0
        runner.embed(run)
        runner.score(run)
        write_report(run)
    finally:
        run.close()


def test_overlapped_and_serial_runs_write_identical_files(concept_dir: Path, adapters) -> None:
    extra = f"checkpoints: [{{glob: '{adapters}/*.safetensors'}}]\nthreads: 2\n"
    config = write_config(concept_dir, extra)
    _evaluate(config, concept_dir / "serial", overlap=False)
    _evaluate(config, concept_dir / "overlap", overlap=True)
    serial = sorted((concept_dir / "serial" / "images").rglob("*.png"))
    overlap = sorted((concept_dir / "overlap" / "images").rglob("*.png"))
    assert [p.name for p in serial] == [p.name for p in overlap] and len(serial) == 20
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(serial, overlap, strict=True))
    board = (concept_dir / "serial" / "leaderboard.csv").read_bytes()
    assert (concept_dir / "overlap" / "leaderboard.csv").read_bytes() == board
    assert not _render_threads()


def _tasks(config: Path, output: Path):
    run = runner.prepare(config, output_dir=output)
    try:
        return list(runner.render_tasks(run, set())), runner.pipeline_spec(run), run.config.sampler
    finally:
        run.close()


def test_render_errors_reach_the_caller_and_the_thread_ends(concept_dir: Path, monkeypatch) -> None:
    tasks, spec, sampler = _tasks(write_config(concept_dir), concept_dir / "out")
    assert len(tasks) >= 3
    real = Renderer.render
    calls = []

    def render(self, task):
        calls.append(task)
        if len(calls) == 2:
            raise RuntimeError("out of memory in batch 2")
        return real(self, task)

    monkeypatch.setattr(Renderer, "render", render)
    results = LocalExecutor().render(spec, sampler, tasks)
    first = next(results)
    assert all(isinstance(image, bytes) for image in first.images)  # encoded by the consumer
    with pytest.raises(RuntimeError, match="out of memory in batch 2"):
        next(results)
    assert len(calls) == 2 and not _render_threads()


def test_closing_early_stops_the_render_thread(concept_dir: Path) -> None:
    tasks, spec, sampler = _tasks(write_config(concept_dir), concept_dir / "out")
    results = LocalExecutor().render(spec, sampler, tasks)
    next(results)
    results.close()  # e.g. the caller failed writing the store
    assert not _render_threads()

"""A render batch that runs out of GPU memory is retried in halves; one that still fails, or
fails in any other way, fails only its own images and the run goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_config
from PIL import Image

import t2i_bench.generation.render as render_module
from t2i_bench import runner
from t2i_bench.config import SamplerConfig
from t2i_bench.generation.worker import PipelineSpec, Renderer, RenderTask

SAMPLER = SamplerConfig(steps=2, guidance_scale=3.0, width=64, height=64)
PROMPTS = ("a photo of zyx toy", "a lighthouse at dusk", "a red circle", "a blue square")
real_render = render_module.render_batch


def task(prompts=PROMPTS) -> RenderTask:
    n = len(prompts)
    return RenderTask(
        "base", None, 1.0, None, tuple(f"k{i}" for i in range(n)), prompts, tuple(range(n))
    )


def decode(data: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(PipelineSpec(source="tiny", threads=2), SAMPLER)


def test_out_of_memory_retries_in_halves(renderer, monkeypatch) -> None:
    sizes: list[int] = []

    def limited(pipe, prompts, seeds, sampler):
        sizes.append(len(prompts))
        if len(prompts) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_render(pipe, prompts, seeds, sampler)

    renderer.max_batch = None
    monkeypatch.setattr(render_module, "render_batch", limited)
    result = renderer.run(task())
    assert sizes == [4, 2, 2] and renderer.max_batch == 2
    assert all(isinstance(image, bytes) for image in result.images)
    halves = real_render(renderer.pipe, PROMPTS[:2], [0, 1], SAMPLER)
    halves += real_render(renderer.pipe, PROMPTS[2:], [2, 3], SAMPLER)
    for data, image in zip(result.images, halves, strict=True):
        assert np.array_equal(decode(data), np.asarray(image))
    sizes.clear()
    renderer.run(task())  # later batches start at the size that fitted
    assert sizes == [2, 2]


def test_a_batch_that_never_fits_fails_its_images_only(renderer, monkeypatch) -> None:
    def no_memory(pipe, prompts, seeds, sampler):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    renderer.max_batch = None
    monkeypatch.setattr(render_module, "render_batch", no_memory)
    result = renderer.run(task())
    assert result.load_error is None
    assert (
        result.images
        == [
            "out of memory rendering 2 image(s) at once; lower sampler.batch_size, the image "
            "size, or use dtype float16 (OutOfMemoryError: CUDA out of memory. Tried to "
            "allocate 2.00 GiB)"
        ]
        * 4
    )
    monkeypatch.setattr(render_module, "render_batch", real_render)
    assert all(isinstance(image, bytes) for image in renderer.run(task()).images)


def test_any_other_error_fails_the_batch_not_the_run(concept_dir: Path, monkeypatch) -> None:
    def fragile(pipe, prompts, seeds, sampler):
        if any("chef" in p for p in prompts):
            raise ValueError("the pipeline broke\nsecond line")
        return real_render(pipe, prompts, seeds, sampler)

    monkeypatch.setattr(render_module, "render_batch", fragile)
    run = runner.prepare(write_config(concept_dir))
    try:
        rendered, failed_loads = runner.generate(run)
        failures = run.store.failures()
        broken = {
            j.key
            for b in run.plan.batches
            if any("chef" in j.prompt for j in b.jobs)
            for j in b.jobs
        }
        assert broken and failed_loads == 0
        assert rendered == len(run.plan.image_keys) - len(broken)
        assert {item for stage, item, _ in failures if stage == "generate"} == broken
        assert {error for *_, error in failures} == {
            "base: render failed: ValueError: the pipeline broke"
        }
        assert run.store.existing_images() == run.plan.image_keys - broken
    finally:
        run.close()

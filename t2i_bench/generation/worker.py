"""Render tasks: what a worker needs (picklable) and the renderer that runs them.

A ``Renderer`` holds one pipeline and switches checkpoints on it; it returns PNG bytes
(``run``) or images to encode elsewhere (``render``, then ``encode``) and never writes the
store, so the same code serves the local and the Ray executor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from t2i_bench.config import SamplerConfig
from t2i_bench.errors import BenchError


@dataclass(frozen=True)
class PipelineSpec:
    """Everything needed to build the base pipeline in any process."""

    source: str
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    scheduler: str = "ddim"
    allow_pickle: bool = False
    threads: int = 1  # CPU threads: float results depend on it, so every worker uses the same
    config: str | None = None  # base_model.config / vae / prediction_type / variant
    vae: str | None = None
    prediction_type: str | None = None
    variant: str | None = None


@dataclass(frozen=True)
class RenderTask:
    """One render batch of one checkpoint (``path`` None for the base model)."""

    checkpoint: str
    path: str | None
    multiplier: float
    token: str | None
    keys: tuple[str, ...]
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclass
class RenderResult:
    task: RenderTask
    # PNG bytes, or why the image is unusable; PIL images before ``encode`` (``render``)
    images: list[Any]
    load_error: str | None = None


def encode(result: RenderResult) -> RenderResult:
    """The result with its PIL images encoded as PNG bytes (``store.png_bytes``)."""
    from t2i_bench.store import png_bytes

    images = [
        image if isinstance(image, str | bytes) else png_bytes(image) for image in result.images
    ]
    return replace(result, images=images)


def one_line(exc: BaseException) -> str:
    """An exception as one line: a BenchError as it is, others with their type."""
    if isinstance(exc, BenchError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _free_accelerator_memory() -> None:
    """Release cached GPU blocks after an out-of-memory error, before retrying."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Renderer:
    """One loaded pipeline; checkpoints are switched only when the task's differs."""

    def __init__(self, spec: PipelineSpec, sampler: SamplerConfig) -> None:
        self.spec = spec
        self.sampler = sampler
        self.pipe = None
        self.switcher = None
        self.current: tuple | None = None
        self.broken: dict[tuple, str] = {}
        self.loads = 0  # adapter loads, for tests and benchmarks
        self.max_batch: int | None = None  # set after a render batch ran out of memory

    def _ensure_pipeline(self) -> None:
        if self.pipe is None:
            from t2i_bench.generation.adapters import AdapterSwitcher
            from t2i_bench.generation.pipeline import load_base_pipeline

            spec = self.spec
            self.pipe = load_base_pipeline(
                spec.source,
                spec.seed,
                spec.device,
                spec.dtype,
                spec.scheduler,
                config=spec.config,
                vae=spec.vae,
                prediction_type=spec.prediction_type,
                variant=spec.variant,
            )
            self.switcher = AdapterSwitcher(
                self.pipe, spec.source, spec.allow_pickle, config_source=spec.config
            )

    def _switch(self, task: RenderTask) -> None:
        wanted = (task.path, task.multiplier, task.token)
        if wanted == self.current:
            return
        self.current = None
        if task.path is None:
            self.switcher.remove()
        else:
            self.switcher.apply(task.path, task.multiplier, task.token)
            self.loads += 1
        self.current = wanted

    def run(self, task: RenderTask) -> RenderResult:
        """Render a task as PNG bytes; a checkpoint that fails to load fails all its tasks,
        once."""
        return encode(self.render(task))

    def render(self, task: RenderTask) -> RenderResult:
        """Render a task as PIL images (``encode`` makes them PNG bytes); sets this thread's
        torch thread count first (OpenMP's count is per calling thread)."""
        import torch

        torch.set_num_threads(self.spec.threads)
        self._ensure_pipeline()
        wanted = (task.path, task.multiplier, task.token)
        if wanted in self.broken:
            return RenderResult(task, [], self.broken[wanted])
        try:
            self._switch(task)
        except Exception as exc:  # a failed checkpoint never takes the run down
            self.switcher.remove()
            self.broken[wanted] = one_line(exc)
            return RenderResult(task, [], self.broken[wanted])
        return RenderResult(task, self._render(list(task.prompts), list(task.seeds)))

    def _render(self, prompts: list[str], seeds: list[int]) -> list:
        """PIL images, or for each unusable or failed image why, in task order.

        A render batch that runs out of GPU memory is retried once in two halves (and later
        batches are rendered at that size); a half that still does not fit, or any other
        error, fails that batch's images only: the run goes on.
        """
        size = min(len(prompts), self.max_batch or len(prompts))
        out: list = []
        for start in range(0, len(prompts), size):
            chunk = slice(start, start + size)
            out += self._render_chunk(prompts[chunk], seeds[chunk], retry=True)
        return out

    def _render_chunk(self, prompts: list[str], seeds: list[int], retry: bool) -> list:
        import torch

        from t2i_bench.generation.render import BadImageError, render_batch

        try:
            images = render_batch(self.pipe, prompts, seeds, self.sampler)
        except torch.OutOfMemoryError as exc:
            _free_accelerator_memory()
            if retry and len(prompts) > 1:
                half = (len(prompts) + 1) // 2
                self.max_batch = min(self.max_batch or half, half)
                return self._render_chunk(
                    prompts[:half], seeds[:half], retry=False
                ) + self._render_chunk(prompts[half:], seeds[half:], retry=False)
            why = (
                f"out of memory rendering {len(prompts)} image(s) at once; lower "
                f"sampler.batch_size, the image size, or use dtype float16 ({one_line(exc)})"
            )
            return [why] * len(prompts)
        except Exception as exc:  # a failed batch never takes the run down
            return [f"render failed: {one_line(exc)}"] * len(prompts)
        return [str(i) if isinstance(i, BadImageError) else i for i in images]

"""Executors: where render and embed work runs. The driver alone writes the store.

``local`` runs everything in this process: a background thread renders the next batch while
the caller encodes the last one as PNG and writes it to the store. ``ray`` shards render
batches and embedding batches over Ray actors: each actor keeps its pipeline (and the
checkpoint last applied) and its backbones, so a pipeline is loaded once per worker and a
checkpoint once per worker per checkpoint. A task whose worker dies is retried on a
restarted actor; results are keyed by image key, so a retried task never duplicates rows.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from t2i_bench.config import SamplerConfig
from t2i_bench.errors import BenchError
from t2i_bench.generation.worker import PipelineSpec, Renderer, RenderResult, RenderTask, encode

if TYPE_CHECKING:
    from t2i_bench.metrics.embed import Backbones


@dataclass(frozen=True)
class EmbedTask:
    backbone: str  # registered backbone name
    profile: str
    device: str
    shas: tuple[str, ...]
    images: tuple[bytes, ...]  # encoded image files
    options: tuple[tuple[str, object], ...] = ()  # the backbone's loader options
    batch_size: int = 32


# (image shas, their features), or (image shas, error) for images that ran out of device
# memory even one at a time (a batch that runs out is retried in halves first)
EmbedResult = tuple[tuple[str, ...], np.ndarray | str]


def embed_batch(backbone, shas: tuple[str, ...], images: list) -> list[EmbedResult]:
    """Embed one batch, halving it on device out-of-memory (down to single images)."""
    from t2i_bench.backbones._torch import halving_on_oom

    return [
        (shas[lo:hi], result) for lo, hi, result in halving_on_oom(backbone.embed_images, images)
    ]


def _decode(data: bytes):
    from t2i_bench.images import rgb_from_bytes

    return rgb_from_bytes(data)


class Executor(Protocol):
    """Where render and embed work runs; results come back to the driver, which alone
    writes the store."""

    name: str

    def render(
        self, spec: PipelineSpec, sampler: SamplerConfig, tasks: Iterable[RenderTask]
    ) -> Iterator[RenderResult]: ...

    def embed(
        self, backbones: Backbones, role: str, items: dict[str, Path], batch_size: int
    ) -> Iterator[EmbedResult]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs tasks in this process, in order.

    With ``overlap`` (the default) one background thread renders, at most one finished
    batch ahead, while the consumer encodes PNGs (in the thread that iterates) and writes
    the store; without it each batch is rendered, encoded and handed over in turn. Both give
    the same bytes: the render thread sets its own torch thread count."""

    name = "local"

    def __init__(self, overlap: bool = True) -> None:
        self.overlap = overlap
        self._renderers: dict[tuple, Renderer] = {}

    def render(
        self, spec: PipelineSpec, sampler: SamplerConfig, tasks: Iterable[RenderTask]
    ) -> Iterator[RenderResult]:
        key = (spec, sampler.model_dump_json())
        renderer = self._renderers.setdefault(key, Renderer(spec, sampler))
        if not self.overlap:
            for task in tasks:
                yield renderer.run(task)
            return
        for result in render_ahead(renderer, tasks):
            yield encode(result)

    def embed(
        self, backbones: Backbones, role: str, items: dict[str, Path], batch_size: int
    ) -> Iterator[EmbedResult]:
        """Embed with the run's own backbone (loaded once, shared with the score stage; not
        loaded at all when there is nothing to embed)."""
        if not items:
            return
        backbone = backbones.get(role)
        shas = sorted(items)
        for start in range(0, len(shas), batch_size):
            chunk = tuple(shas[start : start + batch_size])
            images = [_decode(items[sha].read_bytes()) for sha in chunk]
            yield from embed_batch(backbone, chunk, images)

    def close(self) -> None:
        self._renderers.clear()


_DONE = object()


def render_ahead(renderer: Renderer, tasks: Iterable[RenderTask]) -> Iterator[RenderResult]:
    """``renderer.render`` of each task, in order, on a background thread that stays at most
    one finished batch ahead of the consumer (a kill loses only the batches in flight).

    An exception in the thread is raised here; closing the generator early stops the thread
    after the batch it is rendering."""
    results: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for task in tasks:
                if stop.is_set() or not put(renderer.render(task)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="t2i-bench-render", daemon=True)
    thread.start()
    try:
        while True:
            item = results.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _RayWorker:
    """The body of a Ray actor: one renderer and a cache of backbones."""

    def __init__(self, spec: PipelineSpec, sampler_json: str) -> None:
        import torch

        torch.set_num_threads(spec.threads)
        self.renderer = Renderer(spec, SamplerConfig.model_validate_json(sampler_json))
        self.backbones: dict[tuple, object] = {}

    def render(self, task: RenderTask) -> RenderResult:
        return self.renderer.run(task)

    def embed(self, task: EmbedTask) -> list[EmbedResult]:
        from t2i_bench.backbones.base import load_backbone

        key = (task.backbone, task.profile, task.device, task.options)
        if key not in self.backbones:
            options = dict(task.options)
            self.backbones[key] = load_backbone(task.backbone, task.profile, task.device, **options)
        backbone = self.backbones[key]
        if hasattr(backbone, "batch_size"):
            backbone.batch_size = task.batch_size
        return embed_batch(backbone, task.shas, [_decode(b) for b in task.images])

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    """Shards tasks over Ray actors on a local or existing cluster."""

    name = "ray"

    def __init__(
        self,
        spec: PipelineSpec,
        sampler: SamplerConfig,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_task: float = 0.0,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise BenchError("--executor ray needs Ray: pip install 't2i-bench[ray]'") from None
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        self.started = not ray.is_initialized()
        if self.started:
            kwargs = {"include_dashboard": False, "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1, num_gpus=gpus_per_task, max_restarts=3)(_RayWorker)
        actor = actor.options(max_task_retries=3)
        self.ray = ray
        self.actors = [actor.remote(spec, sampler.model_dump_json()) for _ in range(count)]

    def _map(self, method: str, tasks: Iterable) -> Iterator:
        """Run tasks over the actors, at most one in flight per actor; yield as they finish.

        Tasks are drawn lazily, so at most one task per actor is held in memory; a worker
        that finishes gets its next task before the caller handles (writes) its result."""
        ray = self.ray
        pending: dict = {}
        source = iter(tasks)
        idle = list(self.actors)

        def submit() -> None:
            while idle:
                task = next(source, None)
                if task is None:
                    return
                worker = idle.pop(0)
                pending[getattr(worker, method).remote(task)] = worker

        submit()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            idle.append(pending.pop(done[0]))
            result = ray.get(done[0])
            submit()
            yield result

    def render(
        self, spec: PipelineSpec, sampler: SamplerConfig, tasks: Iterable[RenderTask]
    ) -> Iterator[RenderResult]:
        yield from self._map("render", tasks)

    def embed(
        self, backbones: Backbones, role: str, items: dict[str, Path], batch_size: int
    ) -> Iterator[EmbedResult]:
        """Embedding batches on the workers, each loading the role's backbone once; the
        driver loads nothing (it knows the backbone's identity from its spec)."""
        name, options = backbones.config.role(role)
        options = tuple(sorted(options.items()))
        tasks = embed_tasks(
            name, backbones.config.profile, backbones.device, items, batch_size, options
        )
        for results in self._map("embed", tasks):
            yield from results

    def worker_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for worker in self.actors:
            self.ray.kill(worker)
        self.actors = []
        if self.started:
            self.ray.shutdown()


def embed_tasks(
    backbone: str,
    profile: str,
    device: str,
    items: dict[str, Path],
    batch_size: int,
    options: tuple[tuple[str, object], ...] = (),
) -> Iterator[EmbedTask]:
    """Embedding work as tasks of ``batch_size`` images (sha -> file), read lazily."""
    shas = sorted(items)
    for i in range(0, len(shas), batch_size):
        chunk = tuple(shas[i : i + batch_size])
        images = tuple(items[s].read_bytes() for s in chunk)
        yield EmbedTask(backbone, profile, device, chunk, images, options, batch_size)

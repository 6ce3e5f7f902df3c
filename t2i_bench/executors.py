"""Executors: where render and embed work runs. The driver alone writes the store.

``local`` runs everything in this process. ``ray`` shards render batches and embedding
batches over Ray actors: each actor keeps its pipeline (and the checkpoint last applied)
and its backbones, so a pipeline is loaded once per worker and a checkpoint once per worker
per checkpoint. A task whose worker dies is retried on a restarted actor; results are keyed
by image key, so a retried task never duplicates rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from t2i_bench.config import SamplerConfig
from t2i_bench.errors import BenchError
from t2i_bench.generation.worker import PipelineSpec, Renderer, RenderResult, RenderTask


@dataclass(frozen=True)
class EmbedTask:
    backbone: str  # registered backbone name
    profile: str
    device: str
    shas: tuple[str, ...]
    images: tuple[bytes, ...]  # encoded image files


def _decode(data: bytes):
    from t2i_bench.images import rgb_from_bytes

    return rgb_from_bytes(data)


class Executor(Protocol):
    """Where work runs; ``embed`` is None when embedding stays in the driver."""

    name: str

    def render(
        self, spec: PipelineSpec, sampler: SamplerConfig, tasks: Iterable[RenderTask]
    ) -> Iterator[RenderResult]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs tasks in this process, in order."""

    name = "local"

    def __init__(self) -> None:
        self._renderers: dict[tuple, Renderer] = {}

    def render(
        self, spec: PipelineSpec, sampler: SamplerConfig, tasks: Iterable[RenderTask]
    ) -> Iterator[RenderResult]:
        key = (spec, sampler.model_dump_json())
        renderer = self._renderers.setdefault(key, Renderer(spec, sampler))
        for task in tasks:
            yield renderer.run(task)

    def close(self) -> None:
        self._renderers.clear()


class _RayWorker:
    """The body of a Ray actor: one renderer and a cache of backbones."""

    def __init__(self, spec: PipelineSpec, sampler_json: str) -> None:
        import torch

        torch.set_num_threads(spec.threads)
        self.renderer = Renderer(spec, SamplerConfig.model_validate_json(sampler_json))
        self.backbones: dict[tuple, object] = {}

    def render(self, task: RenderTask) -> RenderResult:
        return self.renderer.run(task)

    def embed(self, task: EmbedTask) -> tuple[tuple[str, ...], np.ndarray]:
        from t2i_bench.backbones.base import load_backbone

        key = (task.backbone, task.profile, task.device)
        if key not in self.backbones:
            self.backbones[key] = load_backbone(task.backbone, task.profile, task.device)
        backbone = self.backbones[key]
        return task.shas, backbone.embed_images([_decode(b) for b in task.images])

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

        Tasks are drawn lazily, so at most one task per actor is held in memory."""
        ray = self.ray
        pending: dict = {}
        source = iter(tasks)
        idle = list(self.actors)
        exhausted = False
        while True:
            while idle and not exhausted:
                task = next(source, None)
                if task is None:
                    exhausted = True
                    break
                worker = idle.pop(0)
                pending[getattr(worker, method).remote(task)] = worker
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            idle.append(pending.pop(done[0]))
            yield ray.get(done[0])

    def render(
        self, spec: PipelineSpec, sampler: SamplerConfig, tasks: Iterable[RenderTask]
    ) -> Iterator[RenderResult]:
        yield from self._map("render", tasks)

    def embed(self, tasks: Iterable[EmbedTask]) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
        yield from self._map("embed", tasks)

    def worker_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for worker in self.actors:
            self.ray.kill(worker)
        self.actors = []
        if self.started:
            self.ray.shutdown()


def embed_tasks(
    backbone: str, profile: str, device: str, items: dict[str, Path], batch_size: int
) -> Iterator[EmbedTask]:
    """Embedding work as tasks of ``batch_size`` images (sha -> file), read lazily."""
    shas = sorted(items)
    for i in range(0, len(shas), batch_size):
        chunk = tuple(shas[i : i + batch_size])
        yield EmbedTask(
            backbone, profile, device, chunk, tuple(items[s].read_bytes() for s in chunk)
        )

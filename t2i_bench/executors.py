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
from collections.abc import Callable, Iterable, Iterator
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
    role: str = ""  # the role the features are for (handed back with them)


EmbedWork = dict[str, dict[str, Path]]  # role -> image sha -> its file
# (role, image shas, their features), or (role, image shas, error) for images that ran out of
# device memory even one at a time (a batch that runs out is retried in halves first)
EmbedResult = tuple[str, tuple[str, ...], np.ndarray | str]


def embed_schedule(work: EmbedWork, batch_size: int) -> list[tuple[str, tuple[str, ...]]]:
    """The (role, image shas) batches every executor embeds: each role's images sorted, in
    chunks of ``batch_size`` (so features never depend on the executor or on the other
    roles), ordered by each chunk's last image so that roles sharing images meet them at
    about the same time (an image is decoded once, for every role that reads it)."""
    chunks = []
    for role in sorted(work):
        shas = sorted(work[role])
        chunks += [(role, tuple(shas[i : i + batch_size])) for i in range(0, len(shas), batch_size)]
    return sorted(chunks, key=lambda chunk: (chunk[1][-1], chunk[0]))


def embed_batch(backbone, role: str, shas: tuple[str, ...], images: list) -> list[EmbedResult]:
    """Embed one batch, halving it on device out-of-memory (down to single images)."""
    from t2i_bench.backbones._torch import halving_on_oom

    return [
        (role, shas[lo:hi], result)
        for lo, hi, result in halving_on_oom(backbone.embed_images, images)
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
        self, backbones: Backbones, work: EmbedWork, batch_size: int
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
        self, backbones: Backbones, work: EmbedWork, batch_size: int
    ) -> Iterator[EmbedResult]:
        """Embed with the run's own backbones (each loaded once, on first use, and shared
        with the score stage; none when there is nothing to embed) in the batches of
        :func:`embed_schedule`, each halved on device out-of-memory (:func:`embed_batch`).

        Three steps run side by side: a thread reads and decodes each image once for every
        role that reads it (kept until its last batch), a thread runs the forward passes
        (with the caller's torch thread count, so the features are the same as in series),
        and the caller writes each batch's features while the next ones are computed."""
        import torch

        schedule = embed_schedule(work, batch_size)
        if not schedule:
            return
        files = {sha: path for items in work.values() for sha, path in items.items()}
        threads = torch.get_num_threads()
        if not self.overlap:
            images = decoded_batches(schedule, files)
            for item in images:
                yield from _forward(backbones, *item)
            return

        def forward(item: tuple[str, tuple[str, ...], list]) -> list[EmbedResult]:
            torch.set_num_threads(threads)  # per thread in OpenMP: as the caller's
            return _forward(backbones, *item)

        for results in pipelined(decoded_batches(schedule, files), forward):
            yield from results

    def close(self) -> None:
        self._renderers.clear()


def _forward(
    backbones: Backbones, role: str, shas: tuple[str, ...], images: list
) -> list[EmbedResult]:
    return embed_batch(backbones.get(role), role, shas, images)


def decoded_batches(
    schedule: list[tuple[str, tuple[str, ...]]], files: dict[str, Path]
) -> Iterator[tuple[str, tuple[str, ...], list]]:
    """(role, shas, RGB images) per scheduled batch; each file is read and decoded once and
    kept only until the last batch that reads it."""
    from collections import Counter

    left = Counter(sha for _, shas in schedule for sha in shas)
    cache: dict[str, object] = {}
    for role, shas in schedule:
        images = []
        for sha in shas:
            if sha not in cache:
                cache[sha] = _decode(files[sha].read_bytes())
            images.append(cache[sha])
            left[sha] -= 1
            if not left[sha]:
                del cache[sha]
        yield role, shas, images


_DONE = object()


def pipelined(items: Iterable, *steps: Callable, depth: int = 2) -> Iterator:
    """``steps`` applied to each item in turn, each step (and drawing the items) on its own
    thread, at most ``depth`` results ahead of the next; results in order. An exception in
    any thread is raised here; closing the generator early stops the threads."""
    stop = threading.Event()

    def put(out: queue.Queue, item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(source: queue.Queue) -> object:
        while not stop.is_set():
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue
        return _DONE

    def feed(out: queue.Queue) -> None:
        try:
            for item in items:
                if not put(out, item):
                    return
        except BaseException as exc:  # handed down the line, raised by the consumer
            put(out, exc)
            return
        put(out, _DONE)

    def run(step: Callable, source: queue.Queue, out: queue.Queue) -> None:
        while True:
            item = get(source)
            if item is _DONE or isinstance(item, BaseException):
                put(out, item)
                return
            try:
                result = step(item)
            except BaseException as exc:
                put(out, exc)
                return
            if not put(out, result):
                return

    queues = [queue.Queue(maxsize=depth) for _ in range(len(steps) + 1)]
    threads = [threading.Thread(target=feed, args=(queues[0],), daemon=True)]
    for step, source, out in zip(steps, queues, queues[1:], strict=False):
        threads.append(threading.Thread(target=run, args=(step, source, out), daemon=True))
    for thread in threads:
        thread.start()
    try:
        while True:
            item = queues[-1].get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


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
        return embed_batch(backbone, task.role, task.shas, [_decode(b) for b in task.images])

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
        self, backbones: Backbones, work: EmbedWork, batch_size: int
    ) -> Iterator[EmbedResult]:
        """The batches of :func:`embed_schedule` on the workers, each loading a role's
        backbone once; the driver loads nothing (it knows identities from the specs)."""
        for results in self._map("embed", embed_tasks(backbones, work, batch_size)):
            yield from results

    def worker_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for worker in self.actors:
            self.ray.kill(worker)
        self.actors = []
        if self.started:
            self.ray.shutdown()


def embed_tasks(backbones: Backbones, work: EmbedWork, batch_size: int) -> Iterator[EmbedTask]:
    """The batches of :func:`embed_schedule` as tasks carrying their image files' bytes (read
    lazily, as the tasks are drawn)."""
    files = {sha: path for items in work.values() for sha, path in items.items()}
    for role, shas in embed_schedule(work, batch_size):
        name, options = backbones.config.role(role)
        images = tuple(files[sha].read_bytes() for sha in shas)
        yield EmbedTask(
            name,
            backbones.config.profile,
            backbones.device,
            shas,
            images,
            tuple(sorted(options.items())),
            batch_size,
            role,
        )

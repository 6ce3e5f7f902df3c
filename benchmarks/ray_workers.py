"""Comparison 6: Ray's speed-up from 1 to 2 workers vs the speed-up plain processes reach on
the same work in the same run (target: Ray reaches >= 0.9 of it).

The work: the render tasks of a run's plan (tiny base + LyCORIS adapters, one task per render
batch), each rendered by a :class:`Renderer` and handed back as PNG bytes. Ray:
``RayExecutor(spec, sampler, workers=N)`` on one local Ray instance (started once, not timed;
3 logical CPUs so that the 1- and 2-worker executors' actors can exist together). The
control: a pool of N plain processes (``ProcessPoolExecutor``, spawn), each with its own
:class:`Renderer`, the same tasks handed out as workers free up. Every executor is started
and warmed up (pipeline loaded) before its timed pass; passes run interleaved (plain 1, Ray 1,
plain 2, Ray 2, then the reverse) so that other load on the machine hits both alike. On a
2-core machine shared with other jobs the absolute speed-ups measure the machine; their ratio
measures what Ray costs over plain processes. The PNGs of every pass are compared.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from benchmarks.common import Context, Row
from benchmarks.workload import write_adapters, write_concept, write_config

NAME = "ray_workers"
_RENDERER = None  # the plain worker process's renderer


def _tasks(config):
    from t2i_bench import runner

    run = runner.prepare(config)
    try:
        return list(runner.render_tasks(run, set())), run.config.sampler
    finally:
        run.close()


def _warm_task(task):
    """One image of the base model: loads the pipeline, applies no adapter."""
    first = {"keys": task.keys[:1], "prompts": task.prompts[:1], "seeds": task.seeds[:1]}
    return replace(task, path=None, **first)


def _plain_init(spec, sampler_json: str, warm) -> None:
    global _RENDERER
    import torch

    from t2i_bench.config import SamplerConfig
    from t2i_bench.generation.worker import Renderer

    torch.set_num_threads(spec.threads)
    _RENDERER = Renderer(spec, SamplerConfig.model_validate_json(sampler_json))
    _RENDERER.run(warm)


def _plain_render(task):
    return _RENDERER.run(task)


def _plain_ready(_: int) -> int:
    return os.getpid()


class PlainPool:
    """N spawned processes, each with a warmed-up renderer (not timed)."""

    def __init__(self, spec, sampler, warm, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        args = (spec, sampler.model_dump_json(), warm)
        self.pool = ProcessPoolExecutor(workers, context, initializer=_plain_init, initargs=args)
        pids = set()
        while len(pids) < workers:  # every process started and warmed up
            pids.update(self.pool.map(_plain_ready, range(4 * workers)))

    def render(self, tasks):
        return self.pool.map(_plain_render, tasks)

    def close(self) -> None:
        self.pool.shutdown()


class RayPool:
    """``RayExecutor`` with N workers, each warmed up with one base-model task (not timed)."""

    def __init__(self, spec, sampler, warm, workers: int) -> None:
        from t2i_bench.executors import RayExecutor

        self.spec, self.sampler = spec, sampler
        self.executor = RayExecutor(spec, sampler, workers=workers)
        list(self.executor.render(spec, sampler, [warm] * workers))

    def render(self, tasks):
        return self.executor.render(self.spec, self.sampler, tasks)

    def close(self) -> None:
        self.executor.close()


def timed_pass(pool, tasks) -> tuple[float, dict[str, bytes]]:
    start = time.perf_counter()
    images: dict[str, bytes] = {}
    for result in pool.render(tasks):
        if result.load_error:
            raise RuntimeError(result.load_error)
        images.update(zip(result.task.keys, result.images, strict=True))
    return time.perf_counter() - start, images


def run(ctx: Context) -> Row:
    import ray

    from t2i_bench.generation.worker import PipelineSpec

    root = ctx.workdir / "ray"
    root.mkdir(parents=True, exist_ok=True)
    concept = write_concept(root, references=6)
    adapters = write_adapters(root / "adapters", ctx.size(3, 1))
    config = write_config(
        root,
        "ray",
        adapters,
        concept,
        images_per_prompt=ctx.size(4, 2),
        max_per_type=ctx.size(2, 1),
        threads=1,
        batch_size=8,
    )
    tasks, sampler = _tasks(config)
    spec = PipelineSpec(source="tiny", seed=0, threads=1)
    warm = _warm_task(tasks[0])
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = time.perf_counter()
    # 3 logical CPUs: the 1-worker and the 2-worker executors' actors (1 CPU each) exist side
    # by side for the interleaved rounds; only one executor renders at a time
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    startup = {("ray", 0): time.perf_counter() - started}  # ray.init
    times: dict[tuple[str, int], list[float]] = {}
    outputs: dict[tuple[str, int], dict[str, bytes]] = {}
    rounds = ctx.rounds(3)
    try:
        pools = {}
        for workers in (1, 2):  # started and warmed up before any timing
            for kind, cls in (("plain", PlainPool), ("ray", RayPool)):
                started = time.perf_counter()
                pools[(kind, workers)] = cls(spec, sampler, warm, workers)
                startup[(kind, workers)] = time.perf_counter() - started
        try:
            for turn in range(rounds):
                order = list(pools) if turn % 2 == 0 else list(pools)[::-1]
                for key in order:
                    seconds, outputs[key] = timed_pass(pools[key], tasks)
                    times.setdefault(key, []).append(seconds)
        finally:
            for pool in pools.values():
                pool.close()
    finally:
        ray.shutdown()
    t = {key: min(values) for key, values in times.items()}
    ray_speedup = t[("ray", 1)] / t[("ray", 2)]
    plain_speedup = t[("plain", 1)] / t[("plain", 2)]
    n = sum(len(task.keys) for task in tasks)
    same = all(images == outputs[("plain", 1)] for images in outputs.values())
    spread = "; ".join(
        f"{kind} {workers}: " + ", ".join(f"{s:.2f}" for s in times[(kind, workers)]) + " s"
        for kind, workers in times
    )
    notes = (
        f"{n} images in {len(tasks)} tasks ({len(adapters)} adapters + base, batches of up to "
        f"{max(len(task.keys) for task in tasks)}), tiny model 64 px, DDIM 10 steps, 1 torch "
        f"thread per worker; best of {rounds} interleaved: Ray 1 worker {t[('ray', 1)]:.2f} s, "
        f"2 workers {t[('ray', 2)]:.2f} s (speed-up {ray_speedup:.2f}x); plain processes "
        f"{t[('plain', 1)]:.2f} s, {t[('plain', 2)]:.2f} s (speed-up {plain_speedup:.2f}x); "
        f"Ray 1 worker vs 1 plain process {t[('ray', 1)] / t[('plain', 1)]:.2f}x the time; "
        f"start-up, not timed (processes or actors started, pipeline loaded): ray.init "
        f"{startup[('ray', 0)]:.1f} s, Ray {startup[('ray', 1)]:.1f} s / "
        f"{startup[('ray', 2)]:.1f} s, plain {startup[('plain', 1)]:.1f} s / "
        f"{startup[('plain', 2)]:.1f} s for 1 / 2 workers; "
        f"{'identical PNGs in every pass' if same else 'PNGs DIFFER between passes'}; "
        f"rounds: {spread}"
    )
    return Row(
        NAME,
        "Ray's speed-up (2 workers vs 1) vs plain processes' on the same tasks",
        ray_speedup,
        plain_speedup,
        "x",
        ray_speedup / plain_speedup,
        "speed-up Ray / plain processes",
        ">=",
        0.9,
        notes,
    )

"""The stages of a run, each reading from and writing to the run store.

``prepare`` resolves a config into a plan; ``generate``, ``embed``, ``score`` and
``report`` can each run alone, and ``t2i-bench run`` is all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from t2i_bench.checkpoints import Checkpoint, resolve_checkpoints
from t2i_bench.concepts import Concept, load_concept
from t2i_bench.config import RunConfig, dump_config, load_config
from t2i_bench.errors import BenchError
from t2i_bench.executors import Executor, LocalExecutor
from t2i_bench.generation.base_model import base_identity
from t2i_bench.generation.worker import PipelineSpec, RenderTask
from t2i_bench.hashing import file_sha256
from t2i_bench.metrics.base import Group, Metric, get_metric
from t2i_bench.metrics.embed import Backbones, embedding_needs, reference_shas
from t2i_bench.metrics.score import (
    ScoreSummary,
    build_groups,
    group_identity,
    score_baselines,
    score_groups,
)
from t2i_bench.plan import Plan, make_plan, render_threads
from t2i_bench.prompts import load_prompt_set
from t2i_bench.provenance import extend_history, provenance, version_drift
from t2i_bench.store import RunLock, RunStore, atomic_write_bytes
from t2i_bench.validate import check_prompts_and_plan

Progress = Callable[[str, int, int], None]  # (task label, done, total)


@dataclass
class Run:
    """Everything a stage needs: the resolved config, its plan and the open store."""

    config: RunConfig
    store: RunStore
    plan: Plan
    concepts: list[Concept]
    metrics: list[Metric]
    allow_pickle: bool = False
    warnings: list[str] = field(default_factory=list)
    executor: Executor = field(default_factory=LocalExecutor)
    lock: RunLock | None = None
    backbones: Backbones = field(init=False)

    def __post_init__(self) -> None:
        self.backbones = Backbones(self.config.backbones, self.config.device)

    def close(self) -> None:
        """Release the executor, the lock and the database."""
        self.executor.close()
        if self.lock is not None:
            self.lock.release()
        self.store.close()

    @property
    def base(self) -> Checkpoint:
        return self.plan.checkpoints[0]

    @property
    def reference_shas(self) -> dict[str, list[str]]:
        """concept name -> sha256 of its reference image files."""
        return {c.name: [file_sha256(p) for p in c.image_paths] for c in self.concepts}


def prepare(
    config_path: Path,
    output_dir: Path | None = None,
    allow_pickle: bool = False,
    max_images: int | None = None,
    *,
    adjust: Callable[[RunConfig], RunConfig] | None = None,
    reuse: Run | None = None,
) -> Run:
    """Load and validate everything, write the plan; no model is loaded here.

    ``adjust`` rewrites the loaded config first (``--watch`` keeps only the checkpoint
    files that are completely written). ``reuse`` is an open run of the same folder whose
    store, lock, executor and loaded backbones the new plan keeps (it must not be closed)."""
    config = load_config(Path(config_path), output_dir, max_images)
    if adjust is not None:
        config = adjust(config)
    concepts = [load_concept(p) for p in config.concepts]
    names = [c.name for c in concepts]
    if len(set(names)) != len(names):
        raise BenchError(f"concepts: duplicate concept names {names}", config_path)
    prompt_set = load_prompt_set(config.prompts.set)
    metrics = [get_metric(name) for name in config.metrics]
    check_prompts_and_plan(config, concepts, prompt_set, config_path)
    backbones = Backbones(config.backbones, config.device)
    for role in sorted({role for metric in metrics for role in metric.roles}):
        backbones.spec(role)  # static: a missing weight file fails here, before any work
    checkpoints = resolve_checkpoints(config, allow_pickle=allow_pickle)
    identity = base_identity(**config.base_model.model_dump(exclude={"name"}))
    plan = make_plan(config, checkpoints, concepts, prompt_set, identity, metrics)
    if reuse is not None and Path(reuse.config.output_dir) != Path(config.output_dir):
        raise BenchError(f"output_dir changed to {config.output_dir}", config_path)
    store = reuse.store if reuse is not None else RunStore(config.output_dir)
    lock = reuse.lock if reuse is not None else store.lock()
    atomic_write_bytes(config.output_dir / "config.yaml", dump_config(config).encode())
    store.write_plan(checkpoints, plan.jobs)
    record = provenance(config.model_dump(mode="json", exclude={"output_dir"}))
    store.set_meta("provenance", record)
    history = extend_history(store.get_meta("provenance_history", []) or [], record)
    store.set_meta("provenance_history", history)
    store.set_meta("backbone_profile", config.backbones.profile)
    warnings = [w for ckpt in checkpoints for w in ckpt.warnings]
    store.set_meta("warnings", warnings)
    warnings.extend(version_drift(history))
    if lock.took_over and reuse is None:
        warnings.append(f"took over the lock of a run that is gone ({lock.took_over})")
    run = Run(config, store, plan, concepts, metrics, allow_pickle, warnings, lock=lock)
    run.backbones = backbones
    if reuse is not None:
        run.executor = reuse.executor
        if (reuse.config.backbones, reuse.config.device) == (config.backbones, config.device):
            run.backbones = reuse.backbones  # models already loaded stay loaded
    return run


def render_tasks(run: Run, existing: set[str]):
    """The plan's render batches that miss an image, as picklable tasks."""
    by_name = {c.name: c for c in run.plan.checkpoints}
    for batch in run.plan.batches:
        if all(job.key in existing for job in batch.jobs):
            continue
        ckpt = by_name[batch.checkpoint]
        yield RenderTask(
            checkpoint=ckpt.name,
            path=str(ckpt.path) if ckpt.path else None,
            multiplier=ckpt.multiplier,
            token=ckpt.token,
            keys=tuple(j.key for j in batch.jobs),
            prompts=tuple(j.prompt for j in batch.jobs),
            seeds=tuple(j.seed for j in batch.jobs),
        )


def pipeline_spec(run: Run) -> PipelineSpec:
    cfg = run.config
    return PipelineSpec(
        source=cfg.base_model.source,
        seed=cfg.base_model.seed,
        device=cfg.device,
        dtype=cfg.dtype,
        scheduler=cfg.sampler.scheduler,
        allow_pickle=run.allow_pickle,
        threads=render_threads(cfg),
        config=cfg.base_model.config,
        vae=cfg.base_model.vae,
        prediction_type=cfg.base_model.prediction_type,
        variant=cfg.base_model.variant,
    )


def generate(run: Run, progress: Progress | None = None) -> tuple[int, int]:
    """Render every image the store lacks; returns (rendered, failed checkpoints).

    Whole plan batches are re-rendered (never partial ones), so pixels do not depend on
    where a previous run stopped; images already stored are not rewritten."""
    run.store.verify_images()
    existing = run.store.existing_images()
    tasks = list(render_tasks(run, existing))
    if not tasks:
        return 0, 0
    total = sum(len(t.keys) for t in tasks)
    rendered = done = 0
    failed: set[str] = set()
    for result in run.executor.render(pipeline_spec(run), run.config.sampler, tasks):
        task = result.task
        done += len(task.keys)
        if result.load_error is not None:
            if task.checkpoint not in failed:
                run.store.record_failure("load", task.checkpoint, result.load_error)
            failed.add(task.checkpoint)
        else:
            run.store.clear_failure("load", task.checkpoint)
            for key, image in zip(task.keys, result.images, strict=True):
                if isinstance(image, str):
                    run.store.record_failure("generate", key, f"{task.checkpoint}: {image}")
                elif key not in existing:
                    run.store.put_png(key, image)
                    run.store.clear_failure("generate", key)
                    existing.add(key)
                    rendered += 1
        if progress:
            progress("generate", done, total)
    return rendered, len(failed)


def groups(run: Run) -> list[Group]:
    """The run's rendered images as metric groups (with declared image variants)."""
    concepts = {c.name: c for c in run.concepts}
    return build_groups(
        run.store, concepts, run.reference_shas, run.backbones, run.base.name, run.metrics
    )


def embed(run: Run, progress: Progress | None = None) -> int:
    """Embed every image some metric reads, once per backbone; returns how many were
    embedded. A backbone is loaded (here or on the executor's workers) only when one of its
    embeddings is missing."""
    torch.set_num_threads(pipeline_spec(run).threads)
    needs = embedding_needs(groups(run), run.metrics, run.base.name, _unscored(run))
    paths = {job.sha256: run.store.root / job.relpath for job in run.store.rendered_jobs()}
    paths.update(reference_shas(run.concepts))
    identities: dict[str, str] = {}  # one role per backbone identity: roles sharing a model
    wanted: dict[str, set[str]] = {}
    for role in sorted(needs):
        identity = run.backbones.identity(role)
        first = next((r for r, i in identities.items() if i == identity), role)
        identities.setdefault(first, identity)
        wanted.setdefault(first, set()).update(needs[role])
    work = {
        role: {sha: paths[sha] for sha in sorted(shas - run.store.embedded(identities[role]))}
        for role, shas in wanted.items()
    }
    done = dict.fromkeys(work, 0)
    failed = {item for stage, item, _ in run.store.failures() if stage == "embed"}
    batch = run.config.backbones.batch_size
    for role, shas, features in run.executor.embed(run.backbones, work, batch):
        if isinstance(features, str):  # out of memory even alone: record, carry on
            for sha in shas:
                run.store.record_failure("embed", f"{role}/{sha}", features)
        else:
            run.store.put_embeddings(identities[role], dict(zip(shas, features, strict=True)))
            for item in failed.intersection(f"{role}/{sha}" for sha in shas):
                run.store.clear_failure("embed", item)
        done[role] += len(shas)
        if progress:
            progress(role, done[role], len(work[role]))
    return sum(len(items) for items in work.values())


def score(run: Run, progress: Progress | None = None) -> ScoreSummary:
    """Score every (metric, group) whose inputs changed, then the reference baselines."""
    concepts = {c.name: c for c in run.concepts}

    def report(done: int, total: int) -> None:
        if progress:
            progress("score", done, total)

    summary = score_groups(
        run.store, groups(run), run.metrics, run.backbones, run.base.name, report
    )
    refs = {c.name: [file_sha256(p) for p in c.image_paths] for c in run.concepts}
    run.store.put_baselines(score_baselines(run.store, concepts, refs, run.metrics, run.backbones))
    drop_transient_embeddings(run)
    return summary


def _unscored(run: Run) -> Callable[[Metric, Group], bool]:
    """True for a (metric, group) whose values are not stored for its current inputs."""
    stored = run.store.score_identities()

    def pending(metric: Metric, group: Group) -> bool:
        key = (metric.name, group.checkpoint, group.concept.name, group.prompt_type)
        return stored.get(key) != group_identity(metric, group.for_metric(metric), run.backbones)

    return pending


def drop_transient_embeddings(run: Run) -> int:
    """Drop the generated images' embeddings of transient backbones (see
    ``BackboneSpec.transient``) that no unscored value still reads; reference images' are
    kept (baselines read them on every run). Returns how many were dropped."""
    still = embedding_needs(groups(run), run.metrics, run.base.name, _unscored(run))
    keep = set(reference_shas(run.concepts))
    dropped = 0
    for role in sorted({role for metric in run.metrics for role in metric.roles}):
        if run.backbones.spec(role).transient:
            identity = run.backbones.identity(role)
            drop = run.store.embedded(identity) - keep - still.get(role, set())
            dropped += run.store.delete_embeddings(identity, drop)
    if dropped:
        run.store.reclaim_space()
    return dropped

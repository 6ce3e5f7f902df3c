"""The stages of a run, each reading from and writing to the run store.

``prepare`` resolves a config into a plan; ``generate``, ``embed``, ``score`` and
``report`` can each run alone, and ``t2i-bench run`` is all of them.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from t2i_bench.checkpoints import Checkpoint, resolve_checkpoints
from t2i_bench.concepts import Concept, load_concept
from t2i_bench.config import RunConfig, dump_config, load_config
from t2i_bench.errors import BenchError
from t2i_bench.hashing import stable_hash
from t2i_bench.metrics.base import Metric, get_metric
from t2i_bench.metrics.embed import (
    Backbones,
    embed_images,
    image_files,
    needed_roles,
    reference_shas,
)
from t2i_bench.metrics.score import ScoreSummary, build_groups, score_groups
from t2i_bench.plan import Plan, base_model_identity, make_plan
from t2i_bench.prompts import load_prompt_set
from t2i_bench.store import RunStore, atomic_write_bytes

Progress = Callable[[str, int, int], None]  # (task label, done, total)
PACKAGES = ("t2i-bench", "torch", "diffusers", "transformers", "open_clip_torch", "lycoris-lora")


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
    backbones: Backbones = field(init=False)

    def __post_init__(self) -> None:
        self.backbones = Backbones(self.config.backbones, self.config.device)

    @property
    def base(self) -> Checkpoint:
        return self.plan.checkpoints[0]


def provenance(config: RunConfig) -> dict[str, object]:
    """Package versions, git revision and config hash recorded with every run."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = ""
    return {
        "packages": versions,
        "git_revision": revision or None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "config_hash": stable_hash(config.model_dump(mode="json", exclude={"output_dir"})),
    }


def prepare(config_path: Path, output_dir: Path | None = None, allow_pickle: bool = False) -> Run:
    """Load and validate everything, write the plan; no model is loaded here."""
    config = load_config(Path(config_path), output_dir)
    concepts = [load_concept(p) for p in config.concepts]
    names = [c.name for c in concepts]
    if len(set(names)) != len(names):
        raise BenchError(f"concepts: duplicate concept names {names}", config_path)
    prompt_set = load_prompt_set(config.prompts.set)
    metrics = [get_metric(name) for name in config.metrics]
    checkpoints = resolve_checkpoints(config, allow_pickle=allow_pickle)
    identity = base_model_identity(config.base_model.source, config.base_model.seed)
    plan = make_plan(config, checkpoints, concepts, prompt_set, identity)
    store = RunStore(config.output_dir)
    atomic_write_bytes(config.output_dir / "config.yaml", dump_config(config).encode())
    store.write_plan(checkpoints, plan.jobs)
    store.set_meta("provenance", provenance(config))
    store.set_meta("backbone_profile", config.backbones.profile)
    warnings = [w for ckpt in checkpoints for w in ckpt.warnings]
    store.set_meta("warnings", warnings)
    return Run(config, store, plan, concepts, metrics, allow_pickle, warnings)


def generate(run: Run, progress: Progress | None = None) -> tuple[int, int]:
    """Render every image the store lacks; returns (rendered, failed checkpoints)."""
    from t2i_bench.generation.adapters import AdapterSwitcher
    from t2i_bench.generation.pipeline import load_base_pipeline
    from t2i_bench.generation.render import BadImageError, render_batch

    run.store.verify_images()
    existing = run.store.existing_images()
    todo = [b for b in run.plan.batches if any(j.key not in existing for j in b.jobs)]
    total = sum(len(b.jobs) for b in todo)
    if not todo:
        return 0, 0
    cfg = run.config
    pipe = load_base_pipeline(
        cfg.base_model.source, cfg.base_model.seed, cfg.device, cfg.dtype, cfg.sampler.scheduler
    )
    switcher = AdapterSwitcher(pipe, cfg.base_model.source, run.allow_pickle)
    by_name = {c.name: c for c in run.plan.checkpoints}
    rendered = failed = done = 0
    current: str | None = None
    broken: set[str] = set()
    for batch in todo:
        ckpt = by_name[batch.checkpoint]
        if ckpt.name in broken:
            done += len(batch.jobs)
            continue
        if ckpt.name != current:
            current = ckpt.name
            try:
                if ckpt.is_base:
                    switcher.remove()
                else:
                    switcher.apply(ckpt.path, ckpt.multiplier, ckpt.token)
                run.store.clear_failure("load", ckpt.name)
            except Exception as exc:  # a failed checkpoint never takes the run down
                switcher.remove()
                run.store.record_failure("load", ckpt.name, _one_line(exc))
                broken.add(ckpt.name)
                failed += 1
                done += len(batch.jobs)
                continue
        images = render_batch(
            pipe, [j.prompt for j in batch.jobs], [j.seed for j in batch.jobs], cfg.sampler
        )
        for job, image in zip(batch.jobs, images, strict=True):
            if isinstance(image, BadImageError):
                run.store.record_failure("generate", job.key, f"{ckpt.name}: {image}")
            elif job.key not in existing:
                run.store.put_image(job.key, image)
                run.store.clear_failure("generate", job.key)
                rendered += 1
        done += len(batch.jobs)
        if progress:
            progress("generate", done, total)
    switcher.remove()
    return rendered, failed


def embed(run: Run, progress: Progress | None = None) -> int:
    """Embed generated and reference images for every backbone the metrics need."""
    keys = run.plan.image_keys
    generated = image_files(run.store, keys)
    references = reference_shas(run.concepts)
    count = 0
    for role in needed_roles(run.metrics):
        backbone = run.backbones.get(role)
        items = {**generated, **references}
        count += embed_images(run.store, backbone, items, run.config.backbones.batch_size, progress)
    return count


def score(run: Run, progress: Progress | None = None) -> ScoreSummary:
    from t2i_bench.hashing import file_sha256

    concepts = {c.name: c for c in run.concepts}
    refs = {c.name: [file_sha256(p) for p in c.image_paths] for c in run.concepts}
    groups = build_groups(run.store, concepts, refs, run.backbones, run.base.name)

    def report(done: int, total: int) -> None:
        if progress:
            progress("score", done, total)

    return score_groups(run.store, groups, run.metrics, run.backbones, run.base.name, report)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BenchError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()

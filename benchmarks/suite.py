"""The scoring workload and t2i-bench's side of the scoring comparisons (shared, run once).

Workload: the tiny base model and one LyCORIS adapter render every prompt type of the default
prompt set (``max_per_type`` prompts each, 4 images a prompt) for concept ``zqx`` with 6
reference images; t2i-bench then embeds every image once per backbone and scores the 13
metrics of :data:`benchmarks.workload.SUITE` through ``runner.embed`` and ``runner.score``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Context
from benchmarks.per_metric_scripts import ScoringInput, Values
from benchmarks.workload import (
    count_images,
    image_groups,
    write_adapters,
    write_concept,
    write_config,
)
from benchmarks.zoo import Zoo, ZooBackbones


@dataclass
class Scoring:
    config: Path  # the run config
    generated: Path  # its run folder right after generation: images, no embeddings or scores
    data: ScoringInput
    zoo: Zoo


@dataclass
class SuiteTiming:
    seconds: float
    values: Values
    embedded: int  # (image, backbone) embeddings computed
    roles: list[str]
    backbones: dict  # role -> Backbone, as t2i-bench built them


def scoring_workload(ctx: Context) -> Scoring:
    """Generate the workload's images once per invocation (not timed)."""

    def build() -> Scoring:
        from t2i_bench import runner
        from t2i_bench.concepts import load_concept

        root = ctx.workdir / "scoring"
        root.mkdir(parents=True, exist_ok=True)
        concept = write_concept(root, references=6)
        adapters = write_adapters(root / "adapters", 1)
        config = write_config(
            root,
            "scoring",
            adapters,
            concept,
            images_per_prompt=ctx.size(4, 2),
            max_per_type=ctx.size(2, 1),
            threads=ctx.threads,
        )
        run = runner.prepare(config)
        try:
            rendered, failed = runner.generate(run)
            if failed:
                raise RuntimeError(f"scoring workload: {failed} checkpoint(s) failed to load")
            data = ScoringInput(image_groups(run), load_concept(concept), run.base.name)
        finally:
            run.close()
        zoo = Zoo()
        zoo.warm()  # build the random-weight prototypes outside every timed region
        return Scoring(config, run.config.output_dir, data, zoo)

    return ctx.memo("scoring_workload", build)


def stored_values(run) -> Values:
    """t2i-bench's scores as group values (per-image metrics averaged over the group)."""
    rows = run.store.conn.execute(
        "SELECT metric, checkpoint, prompt_type, AVG(value) FROM scores "
        "GROUP BY metric, checkpoint, prompt_type"
    ).fetchall()
    return {(m, c, t): float(v) for m, c, t, v in rows}


def rounds(ctx: Context) -> int:
    """How often each side of a scoring comparison is timed (the best time counts)."""
    return ctx.size(2, 1)


def measure_suite(ctx: Context, round_: int = 0) -> SuiteTiming:
    """Time ``runner.embed`` + ``runner.score`` (backbone loading included) on a fresh copy of
    the generated run; memoised per round, so both scoring comparisons share the timings."""

    def measure() -> SuiteTiming:
        from t2i_bench import runner
        from t2i_bench.metrics.embed import needed_roles

        work = scoring_workload(ctx)
        fresh = work.generated.with_name("measured")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(work.generated, fresh, ignore=shutil.ignore_patterns("run.lock"))
        run = runner.prepare(work.config, output_dir=fresh)
        try:
            run.backbones = ZooBackbones(run.config.backbones, run.config.device, zoo=work.zoo)
            start = time.perf_counter()
            embedded = runner.embed(run)
            summary = runner.score(run)
            seconds = time.perf_counter() - start
            if summary.failed:
                raise RuntimeError(f"scoring failed: {run.store.failures()[:3]}")
            roles = needed_roles(run.metrics)
            built = {r: run.backbones.get(r) for r in roles}
            return SuiteTiming(seconds, stored_values(run), embedded, roles, built)
        finally:
            run.close()

    return ctx.memo(f"suite_timing:{round_}", measure)


def workload_summary(work: Scoring) -> str:
    groups = work.data.groups
    rows = len({g.checkpoint for g in groups})
    return (
        f"{count_images(groups)} generated 64 px images ({rows} rows) + "
        f"{len(work.data.references)} references"
    )


def agreement(ours: Values, theirs: Values) -> tuple[float, str]:
    """Largest relative difference between the two sides' group values, and where."""
    worst, where = 0.0, "-"
    for key, value in theirs.items():
        mine = ours.get(key)
        if key[0] == "clip_t_x100" and ("clip_t", key[1], key[2]) in ours:
            mine = max(100.0 * ours[("clip_t", key[1], key[2])], 0.0)  # torchmetrics: max(mean,0)
        if mine is None:
            continue
        rel = abs(mine - value) / max(abs(value), abs(mine), 1e-12)
        if rel > worst:
            worst, where = rel, key[0]
    return worst, where

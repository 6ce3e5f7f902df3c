"""The scoring workload and the timed rounds both scoring comparisons share.

Workload: the tiny base model and one LyCORIS adapter render every prompt type of the default
prompt set (``max_per_type`` prompts each, 4 images a prompt) for concept ``zqx`` with 6
reference images. A round times, back to back: t2i-bench's suite (``runner.embed`` +
``runner.score`` of the 13 metrics of :data:`benchmarks.workload.SUITE` on a fresh copy of
the generated run), then the forward-pass floor (if ``floor`` runs), then every per-metric
script (if ``per_metric`` runs). Each comparison takes the best round of each side.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Clock, Context, clock
from benchmarks.per_metric_scripts import SCRIPTS, ScoringInput, Values, read
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
class Round:
    """One round's timings; ``floor`` and ``scripts`` are empty when not asked for."""

    ours: Clock
    values: Values  # t2i-bench's group values
    floor: dict[str, float] = field(default_factory=dict)  # backbone -> forward seconds
    floor_clock: Clock = field(default_factory=Clock)
    scripts: dict[str, float] = field(default_factory=dict)  # per-metric script -> seconds
    scripts_clock: Clock = field(default_factory=Clock)
    script_values: Values = field(default_factory=dict)


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
            _, failed = runner.generate(run)
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
    return run.store.group_means()


def time_suite(work: Scoring) -> tuple[Clock, Values, dict]:
    """Time of ``runner.embed`` + ``runner.score`` (backbone loading included) on a fresh
    copy of the generated run, its values, and the backbones it built (by role)."""
    from t2i_bench import runner

    fresh = work.generated.with_name("measured")
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(work.generated, fresh, ignore=shutil.ignore_patterns("run.lock"))
    run = runner.prepare(work.config, output_dir=fresh)
    try:
        run.backbones = ZooBackbones(run.config.backbones, run.config.device, zoo=work.zoo)
        with clock() as seconds:
            runner.embed(run)
            summary = runner.score(run)
        if summary.failed:
            raise RuntimeError(f"scoring failed: {run.store.failures()[:3]}")
        built = run.backbones.built
        return seconds, stored_values(run), built
    finally:
        run.close()


# ------------------------------------------------------------------------------ floor


def _inputs(backbone, images) -> list[torch.Tensor]:
    """Model inputs in ``batch_size`` chunks, exactly as the backbone prepares them."""
    size = backbone.batch_size
    chunks = [images[i : i + size] for i in range(0, len(images), size)]
    if backbone.name == "inception_v3_fid":  # uint8 NCHW, resized inside the network
        arrays = [np.stack([np.asarray(im) for im in c]) for c in chunks]
        return [torch.from_numpy(a).permute(0, 3, 1, 2).contiguous() for a in arrays]
    return [backbone._prepare_images(c) for c in chunks]


def _forward(backbone, pixels: torch.Tensor) -> torch.Tensor:
    if backbone.name == "inception_v3_fid":
        return backbone.net(pixels)[0]
    return backbone._forward_images(pixels)


def _clip_t_texts(data: ScoringInput) -> list[str]:
    from t2i_bench.metrics.base import get_metric

    types = get_metric("clip_t").prompt_types
    texts = {
        data.concept.text_for_clip_t(p)
        for g in data.groups
        if g.prompt_type in types
        for p in g.prompts
    }
    return sorted(texts)


def time_floor(work: Scoring, backbones: dict) -> tuple[dict[str, float], Clock]:
    """Seconds of the forward passes alone, per backbone (and the CLIP text tower), over every
    image t2i-bench embeds, on inputs preprocessed beforehand; and their total clock."""
    paths = [p for g in work.data.groups for p in g.paths] + list(work.data.references)
    images = read(paths)
    parts: dict[str, Clock] = {}
    with torch.inference_mode():
        for role, backbone in backbones.items():
            batches = _inputs(backbone, images)
            with clock() as parts[role]:
                for pixels in batches:
                    _forward(backbone, pixels)
        clip = backbones["clip"]
        tokens = clip.tokenizer(_clip_t_texts(work.data))
        with clock() as parts["clip text"]:
            for i in range(0, len(tokens), clip.batch_size):
                clip.model.encode_text(tokens[i : i + clip.batch_size])
    return {k: c.wall for k, c in parts.items()}, sum(parts.values(), Clock())


def time_scripts(work: Scoring) -> tuple[dict[str, float], Clock, Values]:
    """Seconds of each per-metric script, run one after the other, their total clock and
    their values."""
    parts: dict[str, Clock] = {}
    values: Values = {}
    for name, script in SCRIPTS.items():
        with clock() as parts[name]:
            values.update(script(work.data, work.zoo))
    return {k: c.wall for k, c in parts.items()}, sum(parts.values(), Clock()), values


def scoring_rounds(ctx: Context) -> list[Round]:
    """Rounds of ours, floor, scripts back to back (only the parts the invocation needs)."""

    def measure() -> list[Round]:
        work = scoring_workload(ctx)
        out = []
        for _ in range(ctx.rounds(2)):
            seconds, values, backbones = time_suite(work)
            current = Round(seconds, values)
            if "floor" in ctx.selected:
                current.floor, current.floor_clock = time_floor(work, backbones)
            if "per_metric" in ctx.selected:
                current.scripts, current.scripts_clock, current.script_values = time_scripts(work)
            out.append(current)
        return out

    return ctx.memo("scoring_rounds", measure)


def workload_summary(work: Scoring) -> str:
    groups = work.data.groups
    rows = len({g.checkpoint for g in groups})
    return (
        f"{count_images(groups)} generated 64 px images ({rows} rows) + "
        f"{len(work.data.references)} references"
    )


def round_times(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


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

"""Plan: expand a config into image jobs with stable keys, grouped into render batches.

An image's key hashes everything that determines its pixels: base model, checkpoint file
and multiplier, prompt text, negative prompt, seed, sampler settings, device type (and the
CPU thread count), dtype, the size of its render batch and the generation code's version.
Batches are fixed by the plan, so a resumed run renders exactly the batches an uninterrupted
one would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from t2i_bench.checkpoints import Checkpoint
from t2i_bench.concepts import Concept
from t2i_bench.config import RunConfig
from t2i_bench.hashing import stable_hash
from t2i_bench.metrics.base import ImageVariant, Metric, image_variants
from t2i_bench.prompts import Prompt, PromptSet, expand_prompts

GENERATION_VERSION = "1"


@dataclass(frozen=True)
class ImageJob:
    """One image to render for one (checkpoint, concept, prompt, seed)."""

    key: str
    checkpoint: str
    concept: str
    prompt_type: str
    template: str
    prompt: str
    seed: int
    index: int  # 0..images_per_prompt-1
    variant: str = ""  # the image variant a metric asked for ("" for the plan's own prompts)


@dataclass(frozen=True)
class RenderBatch:
    """Images of one checkpoint rendered in one pipeline call (distinct keys)."""

    checkpoint: str
    jobs: tuple[ImageJob, ...]


@dataclass
class Plan:
    jobs: list[ImageJob]
    batches: list[RenderBatch]
    checkpoints: list[Checkpoint]
    concepts: list[Concept]

    @property
    def image_keys(self) -> set[str]:
        return {job.key for job in self.jobs}


def variant_prompts(
    prompts: list[Prompt],
    concept: Concept,
    variants: list[tuple[ImageVariant, set[str]]],
    is_base: bool,
) -> list[tuple[Prompt, str]]:
    """The extra prompts the metrics' image variants ask this checkpoint to render, each with
    its variant's name: a rewritten prompt, for the prompt types of the metrics declaring it."""
    extra = []
    for variant, types in variants:
        if variant.rewrite is None or (variant.renderer == "base" and not is_base):
            continue
        for p in prompts:
            if p.prompt_type in types:
                text = variant.rewrite(concept, p.text)
                extra.append((Prompt(p.prompt_type, p.template, text), variant.name))
    return extra


def planned_variants(metrics: list[Metric]) -> list[tuple[ImageVariant, set[str]]]:
    """Each declared image variant with the prompt types of the metrics that read it."""
    image_variants(metrics)  # one name, one variant
    found: dict[str, tuple[ImageVariant, set[str]]] = {}
    for metric in metrics:
        for variant in metric.variants:
            found.setdefault(variant.name, (variant, set()))[1].update(metric.prompt_types)
    return list(found.values())


def image_key_parts(config: RunConfig, base_identity: str) -> dict[str, object]:
    """What every image key of a run shares: the base model, sampler, device type, dtype and
    the generation code's version (the batch size enters each key as the size of the image's
    own render batch: see :func:`batch_keys`)."""
    sampler = config.sampler.model_dump()
    sampler.pop("batch_size")
    device = torch.device(config.device).type
    return {
        "base": base_identity,
        "sampler": sampler,
        "device": device,
        "dtype": config.dtype,
        # CPU kernels round differently with another thread count (GPU kernels do not)
        "threads": render_threads(config) if device == "cpu" else None,
        "generation": GENERATION_VERSION,
    }


def render_threads(config: RunConfig) -> int:
    """The CPU threads every render and embed worker uses: the config's, else this
    machine's default."""
    return config.threads or torch.get_num_threads()


def make_plan(
    config: RunConfig,
    checkpoints: list[Checkpoint],
    concepts: list[Concept],
    prompt_set: PromptSet,
    base_identity: str,
    metrics: list[Metric] = (),
) -> Plan:
    """All jobs (checkpoint × concept × prompt × seed, plus the image variants the metrics
    declare) and their render batches."""
    common = image_key_parts(config, base_identity)
    variants = planned_variants(list(metrics))
    jobs: list[ImageJob] = []
    batches: list[RenderBatch] = []
    for ckpt in checkpoints:
        own: list[ImageJob] = []
        distinct: dict[str, ImageJob] = {}
        for concept in concepts:
            prompts = expand_prompts(
                prompt_set, concept, list(config.prompts.types), config.prompts.max_per_type
            )
            tagged = [(p, "") for p in prompts]
            tagged += variant_prompts(prompts, concept, variants, ckpt.is_base)
            for prompt, variant in tagged:
                for index in range(config.images_per_prompt):
                    seed = config.seed + index
                    key = stable_hash(
                        {**common, "ckpt": ckpt.identity, "prompt": prompt.text, "seed": seed}
                    )
                    job = ImageJob(
                        key=key,
                        checkpoint=ckpt.name,
                        concept=concept.name,
                        prompt_type=prompt.prompt_type,
                        template=prompt.template,
                        prompt=prompt.text,
                        seed=seed,
                        index=index,
                        variant=variant,
                    )
                    own.append(job)
                    distinct.setdefault(key, job)
        final = batch_keys(list(distinct), config.sampler.batch_size)
        jobs += [replace(job, key=final[job.key]) for job in own]
        unique = [replace(job, key=final[job.key]) for job in distinct.values()]
        size = config.sampler.batch_size
        for start in range(0, len(unique), size):
            batches.append(RenderBatch(ckpt.name, tuple(unique[start : start + size])))
    return Plan(jobs=jobs, batches=batches, checkpoints=checkpoints, concepts=concepts)


def batch_keys(content_keys: list[str], batch_size: int) -> dict[str, str]:
    """content key -> image key: the content key and the size of the render batch the image
    is drawn in. Batched kernels round differently at another batch size (not for other
    batch-mates or positions: tests/test_tiny_pipeline.py checks it), so the batch size
    is part of what determines an image's pixels. Batches hold ``batch_size`` images except
    the last of each checkpoint, so adding jobs re-renders at most that batch."""
    out = {}
    for start in range(0, len(content_keys), batch_size):
        chunk = content_keys[start : start + batch_size]
        out.update({key: stable_hash({"content": key, "batch": len(chunk)}) for key in chunk})
    return out

"""Plan: expand a config into image jobs with stable keys, grouped into render batches.

An image's key hashes everything that determines its pixels: base model, checkpoint file
and multiplier, prompt text, negative prompt, seed, sampler settings, dtype and the
generation code's version. Batches are fixed by the plan, so a resumed run renders exactly
the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t2i_bench.checkpoints import Checkpoint
from t2i_bench.concepts import Concept
from t2i_bench.config import RunConfig
from t2i_bench.hashing import file_sha256, stable_hash, tree_sha256
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


def base_model_identity(source: str, seed: int) -> str:
    """A stable identity of the base model: its weight files' hashes, or the tiny seed."""
    if source == "tiny":
        return f"tiny:seed={seed}"
    path = Path(source)
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        return tree_sha256(path)
    return f"hub:{source}"


PLAIN = "/plain"  # suffix of the prompt type of a base image rendered without the concept


def plain_prompts(prompts: list[Prompt], concept: Concept) -> list[Prompt]:
    """The base model's prompts without the concept (trigger replaced by the class word),
    for ``prompt_similarity`` (Guralnick et al.)."""
    return [
        Prompt(p.prompt_type + PLAIN, p.template, concept.text_for_clip_t(p.text))
        for p in prompts
        if p.prompt_type in ("alter", "style")
    ]


def make_plan(
    config: RunConfig,
    checkpoints: list[Checkpoint],
    concepts: list[Concept],
    prompt_set: PromptSet,
    base_identity: str,
) -> Plan:
    """All jobs (checkpoint × concept × prompt × seed) and their render batches."""
    sampler = config.sampler.model_dump()
    sampler.pop("batch_size")  # batching never changes pixels' identity
    common = {
        "base": base_identity,
        "sampler": sampler,
        "dtype": config.dtype,
        "prompt_set": [prompt_set.name, prompt_set.version],
        "generation": GENERATION_VERSION,
    }
    jobs: list[ImageJob] = []
    batches: list[RenderBatch] = []
    for ckpt in checkpoints:
        distinct: dict[str, ImageJob] = {}
        for concept in concepts:
            prompts = expand_prompts(
                prompt_set, concept, list(config.prompts.types), config.prompts.max_per_type
            )
            if ckpt.is_base and "prompt_similarity" in config.metrics:
                prompts += plain_prompts(prompts, concept)
            for prompt in prompts:
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
                    )
                    jobs.append(job)
                    distinct.setdefault(key, job)
        unique = list(distinct.values())
        size = config.sampler.batch_size
        for start in range(0, len(unique), size):
            batches.append(RenderBatch(ckpt.name, tuple(unique[start : start + size])))
    return Plan(jobs=jobs, batches=batches, checkpoints=checkpoints, concepts=concepts)

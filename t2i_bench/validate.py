"""Checks of a run config against this machine and the file system, made before planning."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from t2i_bench.errors import BenchError
from t2i_bench.files import require_regular_file

if TYPE_CHECKING:
    from t2i_bench.concepts import Concept
    from t2i_bench.config import RunConfig
    from t2i_bench.prompts import PromptSet


def check_metrics(names: list[str], path: Path) -> None:
    """Every configured metric is registered (an unknown one suggests close names)."""
    from t2i_bench.metrics.base import get_metric

    for name in names:
        try:
            get_metric(name)
        except BenchError as exc:
            raise BenchError(f"metrics: {exc}", path) from None


def check_paths(config: RunConfig, path: Path) -> None:
    """The output folder and a local base model are of the right kind (no FIFO, no device)."""
    out = config.output_dir
    if out.exists() and not out.is_dir():
        raise BenchError(f"output_dir: {out} exists and is not a folder", path)
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BenchError(f"output_dir: {parent} is not a folder", path)
            break
    source = Path(config.base_model.source)
    if config.base_model.source != "tiny" and source.exists():
        require_regular_file(source, "base model", allow_dir=True)


def check_device(device: str, path: Path) -> None:
    """The configured torch device exists on this machine (one line naming the field)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise BenchError(f"device: {device!r} is not a torch device ({exc})", path) from None
    if parsed.type in ("cpu", "meta"):
        return
    backend = {"cuda": torch.cuda, "mps": torch.backends.mps}.get(parsed.type)
    backend = backend or getattr(torch, parsed.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise BenchError(
            f"device: {device!r} requested but this machine has no {parsed.type} device "
            f"(torch {torch.__version__}); use device: cpu",
            path,
        )
    count = getattr(backend, "device_count", None)
    if parsed.index is not None and count is not None and parsed.index >= count():
        raise BenchError(
            f"device: {device!r} requested but this machine has {count()} {parsed.type} device(s)",
            path,
        )


def planned_images(config: RunConfig, concepts: list[Concept], prompt_set: PromptSet) -> int:
    """How many image jobs the plan will hold, counted without building them: checkpoint
    globs are expanded and prompts listed (as the plan does, with the image variants the
    metrics declare), nothing is read or hashed."""
    from t2i_bench.checkpoints import _expand_entry
    from t2i_bench.metrics.base import get_metric
    from t2i_bench.plan import planned_variants, variant_prompts
    from t2i_bench.prompts import expand_prompts

    adapters = sum(
        len(_expand_entry(entry)) * len(entry.multipliers or [entry.multiplier])
        for entry in config.checkpoints
    )
    variants = planned_variants([get_metric(name) for name in config.metrics])
    base = adapter = 0
    for concept in concepts:
        types, most = list(config.prompts.types), config.prompts.max_per_type
        prompts = expand_prompts(prompt_set, concept, types, most)
        base += len(prompts) + len(variant_prompts(prompts, concept, variants, True))
        adapter += len(prompts) + len(variant_prompts(prompts, concept, variants, False))
    return (base + adapters * adapter) * config.images_per_prompt


def check_prompts_and_plan(
    config: RunConfig, concepts: list[Concept], prompt_set: PromptSet, path: Path
) -> int:
    """Every requested prompt type has prompts, and the plan is within ``max_images``;
    returns the planned image count."""
    from t2i_bench.prompts import expand_prompts

    for concept in concepts:
        found = {p.prompt_type for p in expand_prompts(prompt_set, concept, config.prompts.types)}
        empty = [kind for kind in config.prompts.types if kind not in found]
        if empty:
            raise BenchError(
                f"prompts.types asks for {empty[0]!r} but the prompt set has no {empty[0]} "
                "prompts; add some or remove the type",
                config.prompts.set,
            )
    total = planned_images(config, concepts, prompt_set)
    if total > config.max_images:
        raise BenchError(
            f"the plan has {total:,} images, over max_images {config.max_images:,} "
            "(checkpoints x concepts x prompts x images_per_prompt); raise max_images or pass "
            "--max-images if you mean it",
            path,
        )
    return total

"""``t2i-bench plan``: how many images a config renders, the disk they take and a rough
rendering time, from the config alone (no model is loaded, no checkpoint is hashed).

The assumptions are constants here and in docs/models.md: a PNG takes about
``PNG_BYTES_PER_PIXEL`` bytes per pixel; a UNet evaluation of one image costs
``SECONDS_PER_EVALUATION`` at the family's native size on a current datacenter GPU
(A100-class) in float16, or on a CPU in float32, and scales with the pixel count. With
guidance (``guidance_scale > 1``) each step evaluates the UNet twice. Embedding and scoring
time are not included.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass, field
from pathlib import Path

from t2i_bench.checkpoints import Checkpoint, default_name, safe_name
from t2i_bench.config import RunConfig, load_config
from t2i_bench.errors import BenchError

PNG_BYTES_PER_PIXEL = 1.5  # lossless RGB PNGs of generated images: 1.3-1.7 bytes per pixel
NATIVE_SIZE = {"sd1": 512, "sd2": 768, "sdxl": 1024, "tiny": 64}
# seconds per UNet evaluation of one image at the native size, rendering in batches
SECONDS_PER_EVALUATION = {
    ("gpu", "sd1"): 0.012,
    ("gpu", "sd2"): 0.030,
    ("gpu", "sdxl"): 0.070,
    ("gpu", "tiny"): 0.002,
    ("cpu", "sd1"): 2.0,
    ("cpu", "sd2"): 5.0,
    ("cpu", "sdxl"): 12.0,
    ("cpu", "tiny"): 0.010,  # measured: tiny model, 2 CPU threads, batch 32
}
FLOAT32_FACTOR = 2.5  # float32 on a GPU against float16/bfloat16


@dataclass
class Estimate:
    rows: int
    concepts: int
    images: int
    batches: int
    family: str
    disk_bytes: float
    seconds: float
    per_evaluation: float
    evaluations_per_image: int
    per_row: int  # images each checkpoint row adds
    notes: list[str] = field(default_factory=list)


def _rows(config: RunConfig, notes: list[str]) -> list[Checkpoint]:
    """Placeholder rows for every configured checkpoint that exists (or is named)."""
    rows = [Checkpoint(name=config.base_model.name, path=None, file_hash="base")]
    for i, entry in enumerate(config.checkpoints):
        if entry.path is not None:
            paths = [Path(entry.path)]
            if not paths[0].exists():
                notes.append(f"checkpoints.{i}: {entry.path} does not exist yet (counted)")
        else:
            paths = sorted(Path(p) for p in globlib.glob(entry.glob, recursive=True))
            if not paths:
                notes.append(f"checkpoints.{i}: glob matched no files yet: {entry.glob}")
        for path in paths:
            for multiplier in entry.multipliers or [entry.multiplier]:
                name = f"{safe_name(entry.name or default_name(path))}@{multiplier:g}"
                rows.append(Checkpoint(name=name, path=path, multiplier=multiplier, file_hash=name))
    return rows


def _family(config: RunConfig, notes: list[str]) -> str:
    from t2i_bench.generation.base_model import REFERENCE_FAMILIES, family_of

    source = config.base_model.source
    try:
        family = family_of(source)
    except BenchError as exc:
        family = REFERENCE_FAMILIES.get(source)
        if family is None:
            notes.append(f"base model: {exc}")
    family = family or REFERENCE_FAMILIES.get(source)
    if family is None:
        notes.append("base model family unknown offline: SD 1.x costs assumed")
        return "sd1"
    if family != "tiny" and _is_small(config.base_model.source):
        return "tiny"  # e.g. the demo's trained tiny model saved as a folder
    return family


def _is_small(source: str) -> bool:
    """A UNet far smaller than any published Stable Diffusion (first block < 320 channels)."""
    import json

    config = Path(source) / "unet" / "config.json"
    try:
        channels = json.loads(config.read_text(encoding="utf-8"))["block_out_channels"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(channels) and channels[0] < 320


def estimate(config_path: Path) -> Estimate:
    """Image count, PNG disk and rendering time of a config."""
    from t2i_bench.concepts import load_concept
    from t2i_bench.metrics.base import get_metric
    from t2i_bench.plan import make_plan
    from t2i_bench.prompts import load_prompt_set

    config = load_config(Path(config_path), here=False)
    notes: list[str] = []
    concepts = [load_concept(p) for p in config.concepts]
    prompt_set = load_prompt_set(config.prompts.set)
    rows = _rows(config, notes)
    metrics = [get_metric(name) for name in config.metrics]  # their image variants render too
    plan = make_plan(config, rows, concepts, prompt_set, "estimate", metrics)
    images = len({job.key for job in plan.jobs})
    probe = Checkpoint(name="probe", path=Path("probe"), file_hash="probe")
    probe_plan = make_plan(config, [rows[0], probe], concepts, prompt_set, "estimate", metrics)
    per_row = len({job.key for job in probe_plan.jobs if job.checkpoint == "probe"})
    family = _family(config, notes)
    sampler = config.sampler
    pixels = sampler.width * sampler.height
    device = "cpu" if config.device == "cpu" else "gpu"
    if device == "gpu" and not config.device.startswith("cuda"):
        notes.append(f"device {config.device!r}: CUDA GPU speeds assumed")
    per_evaluation = SECONDS_PER_EVALUATION[(device, family)] * pixels / NATIVE_SIZE[family] ** 2
    if device == "gpu" and config.dtype == "float32":
        per_evaluation *= FLOAT32_FACTOR
    evaluations = sampler.steps * (2 if sampler.guidance_scale > 1 else 1)
    return Estimate(
        rows=len(rows),
        concepts=len(concepts),
        images=images,
        batches=len(plan.batches),
        family=family,
        disk_bytes=images * pixels * PNG_BYTES_PER_PIXEL,
        seconds=images * evaluations * per_evaluation,
        per_evaluation=per_evaluation,
        evaluations_per_image=evaluations,
        per_row=per_row,
        notes=notes,
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe(est: Estimate, config: RunConfig) -> list[str]:
    """The lines ``t2i-bench plan`` prints."""
    from t2i_bench.generation.base_model import FAMILY_NAMES

    s = config.sampler
    return [
        f"rows: {est.rows} (base + {est.rows - 1} checkpoint rows) x {est.concepts} concept(s)",
        f"images: {est.images} in {est.batches} render batches of up to {s.batch_size}; "
        f"each checkpoint row adds {est.per_row} "
        f"(~{_duration(est.per_row * est.evaluations_per_image * est.per_evaluation)})",
        f"disk: ~{_size(est.disk_bytes)} of PNGs ({s.width}x{s.height}, "
        f"~{PNG_BYTES_PER_PIXEL} bytes per pixel; embeddings and scores not included)",
        f"time: ~{_duration(est.seconds)} of rendering ({FAMILY_NAMES[est.family]} on "
        f"{config.device} {config.dtype}: {est.evaluations_per_image} UNet evaluations per "
        f"image at ~{est.per_evaluation * 1000:.0f} ms; assumptions in docs/models.md)",
    ]

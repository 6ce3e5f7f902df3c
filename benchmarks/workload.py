"""The shared workload: a concept with reference images, LyCORIS adapters written against the
tiny base model, run configs, and the generated images of a run as groups on disk."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import REPO

PROMPT_SET = REPO / "prompts" / "default.yaml"
ALGOS = ("lora", "loha", "lokr")
SAMPLER = "scheduler: ddim, steps: 10, guidance_scale: 4.0, width: 64, height: 64"
# every metric that has an independent per-metric implementation in per_metric_scripts.py
SUITE = (
    "clip_i",
    "clip_t",
    "clip_t_x2_5",
    "clip_t_x100",
    "dino",
    "scd",
    "vendi",
    "lpips_div",
    "fid",
    "kid",
    "kid_std",
    "style_loss_base",
    "dino_base",
)


def procedural_image(seed: int, size: int = 64) -> Image.Image:
    """A cheap, distinct RGB image: a smooth colour gradient with a filled rectangle."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 1, 3)[None, None, :] * (0.5 + 0.5 * np.stack([x, y, 1 - x], axis=-1))
    image = (base * 255).astype(np.uint8)
    x0, y0 = rng.integers(0, size // 2, 2)
    w, h = rng.integers(size // 6, size // 2, 2)
    image[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    return Image.fromarray(image)


def write_concept(folder: Path, references: int = 6) -> Path:
    """Concept ``zqx toy``: procedural 64x64 reference images with kohya-style captions."""
    images = folder / "zqx"
    images.mkdir(parents=True, exist_ok=True)
    views = ("front", "side", "back", "top", "close-up", "on a table", "outdoors", "in a box")
    for i in range(references):
        procedural_image(1000 + i).save(images / f"ref_{i}.png")
        (images / f"ref_{i}.txt").write_text(f"a photo of zqx toy, {views[i % len(views)]} view")
    path = folder / "zqx.yaml"
    path.write_text("name: zqx\ntrigger: zqx\nclass_word: toy\ncategory: object\nimages: zqx\n")
    return path


def write_adapter(pipe, path: Path, algo: str, seed: int, dim: int = 4) -> Path:
    """A LyCORIS file written by lycoris-lora's kohya network on ``pipe``, non-zero weights."""
    import lycoris.kohya as lycoris_kohya

    logging.getLogger("LyCORIS").setLevel(logging.ERROR)  # its per-file INFO lines
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = lycoris_kohya.create_network(
            1.0, dim, dim, None, pipe.text_encoder, pipe.unet, algo=algo, preset="attn-mlp"
        )
        network.apply_to(pipe.text_encoder, pipe.unet, True, True)
        with torch.no_grad():
            for param in network.parameters():
                param.add_(0.2 * torch.randn_like(param))
    metadata = {
        "ss_network_module": "lycoris.kohya",
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(dim),
        "ss_network_args": json.dumps({"algo": algo, "preset": "attn-mlp"}),
        "ss_learning_rate": f"{1e-4 * (1 + seed % 3):g}",
        "ss_epoch": str(1 + seed % 4),
        "ss_seed": str(seed),
    }
    network.save_weights(str(path), torch.float32, metadata)
    network.restore()
    return path


def write_adapters(folder: Path, count: int, pipe=None) -> list[Path]:
    """``count`` adapters (LoRA, LoHa, LoKr in turn) for the tiny base model (seed 0)."""
    if pipe is None:
        from t2i_bench.generation.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        algo = ALGOS[i % len(ALGOS)]
        path = folder / f"{algo}_{i:02d}.safetensors"
        paths.append(path if path.exists() else write_adapter(pipe, path, algo, seed=i))
    return paths


def write_config(
    folder: Path,
    name: str,
    checkpoints: list[Path],
    concept: Path,
    *,
    images_per_prompt: int,
    max_per_type: int,
    threads: int,
    metrics: tuple[str, ...] = SUITE,
    multipliers: list[float] | None = None,
    output: Path | None = None,
    batch_size: int = 32,
) -> Path:
    """A run config over the tiny base model with the tiny backbone profile."""
    entries = [f"  - {{path: {p}}}" for p in checkpoints]
    if multipliers:
        entries = [f"  - {{path: {checkpoints[0]}, multipliers: {multipliers}}}"]
    text = "\n".join(
        [
            f"name: {name}",
            f"output_dir: {output or folder / name}",
            "base_model: {source: tiny}",
            f"sampler: {{{SAMPLER}, batch_size: {batch_size}}}",
            "checkpoints:" + ("\n" + "\n".join(entries) if entries else " []"),
            f"concepts: [{concept}]",
            f"prompts: {{set: {PROMPT_SET}, max_per_type: {max_per_type}}}",
            f"images_per_prompt: {images_per_prompt}",
            "seed: 0",
            f"metrics: [{', '.join(metrics)}]",
            "backbones: {profile: tiny, batch_size: 32}",
            "device: cpu",
            f"threads: {threads}",
            "",
        ]
    )
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class ImageGroup:
    """The generated images of one (checkpoint, prompt type), as a script finds them on disk."""

    checkpoint: str
    prompt_type: str
    paths: tuple[Path, ...]
    prompts: tuple[str, ...]
    base_paths: tuple[Path | None, ...]  # the base model's image for the same prompt and seed


def image_groups(run) -> list[ImageGroup]:
    """Groups of a generated run (one concept), read from its store."""
    rows = [
        (j.checkpoint, j.prompt_type, j.template, j.prompt, j.seed, j.relpath)
        for j in run.store.rendered_jobs()
        if j.variant == ""
    ]
    root = run.store.root
    base_name = run.base.name
    base = {(t, tpl, s): root / rel for ckpt, t, tpl, _, s, rel in rows if ckpt == base_name}
    grouped: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for row in rows:
        grouped[(row[0], row[1])].append(row)
    return [
        ImageGroup(
            checkpoint=ckpt,
            prompt_type=ptype,
            paths=tuple(root / m[5] for m in members),
            prompts=tuple(m[3] for m in members),
            base_paths=tuple(base.get((m[1], m[2], m[4])) for m in members),
        )
        for (ckpt, ptype), members in grouped.items()
    ]


def count_images(groups: list[ImageGroup]) -> int:
    return sum(len(g.paths) for g in groups)

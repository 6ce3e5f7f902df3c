"""Cache soundness as a property: change any one input, rerun on the old run folder, and the
leaderboard is byte-identical to a fresh run's in a new folder. Every field of the config,
the concept, the prompt set and the checkpoint file is changed once; a field that cannot
change any value is listed as such (it must then leave the leaderboard unchanged too)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from adapter_files import write_lycoris_file
from PIL import Image
from typer.testing import CliRunner

from t2i_bench.cli import app

METRICS = [
    "clip_i",  # reference images, set metric
    "clip_t",  # texts from the concept's clip_t_rule
    "prompt_similarity",  # a rewritten-prompt base-image variant
    "dino_base",  # the base image of the same prompt and seed
    "vendi",  # groups images by prompt
    "fid",  # set metric with notes
    "image_reward",  # texts read inside compute
    "aesthetic",  # a head on cached embeddings
]
PROMPTS = {
    "name": "soundness",
    "version": 1,
    "trigger": ["{}"],
    "alter": ["{} on a beach"],
    "style": ["{} as a watercolor"],
    "agnostic": ["a red bicycle", "a bowl of soup"],
}


def _config() -> dict:
    return {
        "name": "soundness",
        "output_dir": "out",
        "base_model": {"source": "tiny", "seed": 0, "name": "base"},
        "sampler": {
            "scheduler": "ddim",
            "steps": 2,
            "guidance_scale": 3.0,
            "width": 64,
            "height": 64,
            "negative_prompt": "",
            "batch_size": 8,
        },
        "checkpoints": [{"path": "adapters/zyx-e1.safetensors"}],
        "concepts": ["zyx.yaml"],
        "prompts": {"set": "prompts.yaml", "max_per_type": 1},
        "images_per_prompt": 2,
        "seed": 0,
        "metrics": METRICS,
        "threads": 1,
        "dtype": "float32",
    }


def _concept() -> dict:
    return {
        "name": "zyx",
        "trigger": "zyx",
        "class_word": "toy",
        "category": "object",
        "images": "zyx",
        "clip_t_rule": "class",
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The inputs of the reference run and its run folder (``out``)."""
    from t2i_bench.generation.pipeline import load_base_pipeline

    root = tmp_path_factory.mktemp("inputs")
    images = root / "zyx"
    images.mkdir()
    for i in range(3):
        array = np.zeros((64, 64, 3), np.uint8)
        array[12 + 4 * i : 44, 16:48, i] = 200
        Image.fromarray(array).save(images / f"img_{i}.png")
        (images / f"img_{i}.txt").write_text(f"a photo of zyx toy, view {i}")
    (root / "adapters").mkdir()
    pipe = load_base_pipeline("tiny", seed=0)
    write_lycoris_file(pipe, root / "adapters" / "zyx-e1.safetensors", algo="lora", seed=3)
    write_lycoris_file(pipe, root / "other.safetensors", algo="loha", seed=4)
    _write(root, _config(), _concept(), PROMPTS)
    assert _run(root / "cfg.yaml").exit_code in (0, 1)
    return root


def _write(root: Path, config: dict, concept: dict, prompts: dict) -> None:
    (root / "cfg.yaml").write_text(yaml.safe_dump(config))
    (root / "zyx.yaml").write_text(yaml.safe_dump(concept))
    (root / "prompts.yaml").write_text(yaml.safe_dump(prompts))


def _run(config: Path, output: Path | None = None):
    args = ["run", str(config)] + (["--output", str(output)] if output else [])
    return CliRunner().invoke(app, args)


def _edit_yaml(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = yaml.safe_load((root / name).read_text())
        change(data)
        (root / name).write_text(yaml.safe_dump(data))

    return apply


def _set(name: str, dotted: str, value) -> Callable[[Path], None]:
    def change(data: dict) -> None:
        *parents, leaf = dotted.split(".")
        for key in parents:
            data = data[int(key)] if isinstance(data, list) else data[key]
        data[leaf] = value

    return _edit_yaml(name, change)


def _replace_image(root: Path) -> None:
    path = root / "zyx" / "img_1.png"
    array = np.asarray(Image.open(path)).copy()
    array[40:60, 5:25] = (10, 250, 30)
    Image.fromarray(array).save(path)


def _replace_checkpoint(root: Path) -> None:
    shutil.copy(root / "other.safetensors", root / "adapters" / "zyx-e1.safetensors")


def _corrupt_checkpoint(root: Path) -> None:
    (root / "adapters" / "zyx-e1.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")


def _rewrite_metadata(root: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = root / "adapters" / "zyx-e1.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
    meta["ss_epoch"] = "7"
    save_file(load_file(str(path)), str(path), metadata=meta)


def _caption(root: Path) -> None:
    (root / "zyx" / "img_0.txt").write_text("a photo of zyx toy on grass")


CONFIG = "cfg.yaml"
CHANGES: dict[str, Callable[[Path], None]] = {
    # config fields
    "config.name": _set(CONFIG, "name", "renamed"),
    "config.base_model.seed": _set(CONFIG, "base_model.seed", 1),
    "config.base_model.name": _set(CONFIG, "base_model.name", "sd"),
    "config.sampler.scheduler": _set(CONFIG, "sampler.scheduler", "euler"),
    "config.sampler.steps": _set(CONFIG, "sampler.steps", 3),
    "config.sampler.guidance_scale": _set(CONFIG, "sampler.guidance_scale", 5.0),
    "config.sampler.width+height": _edit_yaml(
        CONFIG, lambda d: d["sampler"].update(width=128, height=128)
    ),
    "config.sampler.negative_prompt": _set(CONFIG, "sampler.negative_prompt", "blurry"),
    "config.sampler.batch_size": _set(CONFIG, "sampler.batch_size", 3),
    "config.checkpoints.multiplier": _set(CONFIG, "checkpoints.0.multiplier", 0.5),
    "config.checkpoints.multipliers": _set(CONFIG, "checkpoints.0.multipliers", [0.5, 1.0]),
    "config.checkpoints.name": _set(CONFIG, "checkpoints.0.name", "mine"),
    "config.checkpoints.hyperparameters": _set(CONFIG, "checkpoints.0.hyperparameters", {"lr": 2}),
    "config.filename_pattern": _set(CONFIG, "filename_pattern", r"-e(?P<epoch>\d+)"),
    "config.prompts.types": _set(CONFIG, "prompts.types", ["trigger", "alter", "agnostic"]),
    "config.prompts.max_per_type": _set(CONFIG, "prompts.max_per_type", 2),
    "config.images_per_prompt": _set(CONFIG, "images_per_prompt", 3),
    "config.seed": _set(CONFIG, "seed", 4),
    "config.metrics": _set(CONFIG, "metrics", [m for m in METRICS if m != "vendi"] + ["dino"]),
    "config.backbones.clip": _set(CONFIG, "backbones", {"clip": "clip_vit_b32"}),
    "config.backbones.dino": _set(CONFIG, "backbones", {"dino": "dino_vits16"}),
    "config.backbones.batch_size": _set(CONFIG, "backbones", {"batch_size": 5}),
    "config.dtype": _set(CONFIG, "dtype", "bfloat16"),
    "config.threads": _set(CONFIG, "threads", 2),
    # concept fields
    "concept.name": _set("zyx.yaml", "name", "zyx2"),
    "concept.trigger": _set("zyx.yaml", "trigger", "<zyx>"),
    "concept.class_word": _set("zyx.yaml", "class_word", "plush"),
    "concept.category": _set("zyx.yaml", "category", "toy"),
    "concept.clip_t_rule": _set("zyx.yaml", "clip_t_rule", "keep"),
    "concept.captions": _set("zyx.yaml", "captions", False),
    "concept.caption_text": _caption,
    "concept.reference_image": _replace_image,
    # prompt-set fields
    "prompts.name": _set("prompts.yaml", "name", "renamed"),
    "prompts.version": _set("prompts.yaml", "version", 2),
    "prompts.description": _set("prompts.yaml", "description", "changed"),
    "prompts.trigger": _set("prompts.yaml", "trigger", ["a photo of {}"]),
    "prompts.alter": _set("prompts.yaml", "alter", ["{} in a forest"]),
    "prompts.style": _set("prompts.yaml", "style", ["{} as an oil painting"]),
    "prompts.agnostic": _set("prompts.yaml", "agnostic", ["a green bicycle", "a bowl of soup"]),
    # checkpoint file
    "checkpoint.contents": _replace_checkpoint,
    "checkpoint.corrupt": _corrupt_checkpoint,
    "checkpoint.metadata": _rewrite_metadata,
}
#: Fields that provably cannot change a value (they still must leave the leaderboard as a
#: fresh run writes it): names and descriptions only label things. (Batch sizes are not
#: among them: batched kernels round differently at another batch size, so the render batch
#: size enters image keys and the embedding batch size enters embedding keys.)
NO_VALUE_CHANGE = {
    "config.name",
    "prompts.name",
    "prompts.version",
    "prompts.description",
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_rerun_after_a_change_equals_a_fresh_run(inputs: Path, tmp_path: Path, field: str):
    case = tmp_path / "case"
    shutil.copytree(inputs, case)
    (case / "out" / "run.lock").unlink(missing_ok=True)
    before = (case / "out" / "leaderboard.csv").read_bytes()
    CHANGES[field](case)
    rerun = _run(case / CONFIG)
    fresh = _run(case / CONFIG, tmp_path / "fresh")
    assert rerun.exit_code == fresh.exit_code, (rerun.output, fresh.output)
    old_board = (case / "out" / "leaderboard.csv").read_bytes()
    if rerun.exit_code == 2:  # the change is refused before any work: nothing may change
        assert old_board == before and not (tmp_path / "fresh" / "leaderboard.csv").exists()
        return
    new_board = (tmp_path / "fresh" / "leaderboard.csv").read_bytes()
    assert old_board == new_board, _diff(old_board, new_board)
    if field in NO_VALUE_CHANGE:
        assert _values(new_board) == _values(before)


def _values(board: bytes) -> list[str]:
    """The leaderboard's cells without the checkpoint names and ids (to compare values)."""
    lines = board.decode().splitlines()
    return [re.sub(r"^[^,]*,", "", line) for line in lines[1:]]


def _diff(a: bytes, b: bytes) -> str:
    rows_a, rows_b = a.decode().splitlines(), b.decode().splitlines()
    header = rows_a[0].split(",")
    out = []
    for ra, rb in zip(rows_a[1:], rows_b[1:], strict=False):
        for name, x, y in zip(header, ra.split(","), rb.split(","), strict=False):
            if x != y:
                out.append(f"{name}: rerun {x} vs fresh {y}")
    return json.dumps(out[:10]) + f" ({len(rows_a)} vs {len(rows_b)} lines)"

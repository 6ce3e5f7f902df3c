"""Hyperparameters read from kohya ss_* metadata, file names and config; grouping; inspect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_config
from safetensors.torch import save_file
from typer.testing import CliRunner

from t2i_bench.checkpoints import resolve_checkpoints
from t2i_bench.cli import app
from t2i_bench.config import load_config
from t2i_bench.errors import BenchError

ALGOS = {"lora": None, "loha": None, "lokr": 4}


def write_kohya(path: Path, algo: str, lr: float, epoch: int, seed: int, **extra: str) -> Path:
    """A minimal kohya-style LoRA file with the metadata sd-scripts writes."""
    args = {"algo": algo, "preset": "attn-mlp"}
    if ALGOS.get(algo):
        args["factor"] = str(ALGOS[algo])
    meta = {
        "ss_network_module": "lycoris.kohya",
        "ss_network_dim": "8",
        "ss_network_alpha": "4.0",
        "ss_network_args": json.dumps(args),
        "ss_learning_rate": repr(lr),
        "ss_unet_lr": repr(lr),
        "ss_text_encoder_lr": repr(lr / 2),
        "ss_epoch": str(epoch),
        "ss_steps": str(epoch * 25),
        "ss_seed": str(seed),
        "ss_output_name": f"olis-{algo}-lr{lr:g}-s{seed}",
        "ss_sd_model_name": "tiny",
        **extra,
    }
    tensors = {
        "lora_unet_conv_in.lora_down.weight": torch.zeros(8, 4, 3, 3),
        "lora_unet_conv_in.lora_up.weight": torch.zeros(32, 8, 1, 1),
    }
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.fixture()
def grid(concept_dir: Path) -> Path:
    """18 files: 3 algos x 2 learning rates x 3 epochs (seed 7), kohya-style names."""
    folder = concept_dir / "loras"
    folder.mkdir()
    for algo in ALGOS:
        for lr in (1e-4, 1e-3):
            for epoch in (1, 2, 3):
                name = f"olis-{algo}-lr{lr:g}-{epoch:06d}.safetensors"
                write_kohya(folder / name, algo, lr, epoch, seed=7)
    return folder


def test_glob_of_18_files_reads_every_hyperparameter(concept_dir: Path, grid: Path) -> None:
    config = load_config(
        write_config(concept_dir, "checkpoints: [{glob: 'loras/*.safetensors'}]\n")
    )
    rows = resolve_checkpoints(config)
    assert len(rows) == 19 and rows[0].is_base
    ckpts = rows[1:]
    seen = {
        (c.hyperparameters["algo"], c.hyperparameters["lr"], c.hyperparameters["epoch"])
        for c in ckpts
    }
    assert len(seen) == 18
    for ckpt in ckpts:
        hp = ckpt.hyperparameters
        algo, lr, epoch = hp["algo"], hp["lr"], hp["epoch"]
        assert ckpt.name == f"olis-{algo}-lr{lr:g}-{epoch:06d}"
        assert hp["dim"] == 8 and hp["alpha"] == 4.0 and hp["seed"] == 7
        assert hp["step"] == epoch * 25 and hp["text_encoder_lr"] == pytest.approx(lr / 2)
        assert hp.get("factor") == ALGOS[algo]
        assert ckpt.sources["lr"] == "metadata" and ckpt.format == "lycoris"
    # one training run = same run_id across its epochs; 6 runs in all
    assert len({c.run_id for c in ckpts}) == 6
    by_run = {}
    for c in ckpts:
        by_run.setdefault(c.run_id, set()).add(c.hyperparameters["epoch"])
    assert all(epochs == {1, 2, 3} for epochs in by_run.values())


def test_config_id_links_training_seeds(concept_dir: Path) -> None:
    folder = concept_dir / "seeds"
    folder.mkdir()
    for seed in (1, 2, 3):
        write_kohya(folder / f"run-s{seed}.safetensors", "loha", 1e-3, 3, seed=seed)
    config = load_config(
        write_config(concept_dir, "checkpoints: [{glob: 'seeds/*.safetensors'}]\n")
    )
    ckpts = resolve_checkpoints(config)[1:]
    assert len({c.config_id for c in ckpts}) == 1
    assert len({c.run_id for c in ckpts}) == 3


def test_precedence_metadata_then_filename_then_config(concept_dir: Path, grid: Path) -> None:
    extra = (
        "filename_pattern: 'lr(?P<lr>[0-9.e-]+)-(?P<epoch>[0-9]+)$'\n"
        "checkpoints:\n"
        "  - path: loras/olis-loha-lr0.001-000002.safetensors\n"
        "    hyperparameters: {dim: 16}\n"
    )
    ckpt = resolve_checkpoints(load_config(write_config(concept_dir, extra)))[1]
    assert ckpt.hyperparameters["dim"] == 16 and ckpt.sources["dim"] == "config"
    assert ckpt.hyperparameters["epoch"] == 2 and ckpt.sources["epoch"] == "filename"
    assert ckpt.hyperparameters["alpha"] == 4.0 and ckpt.sources["alpha"] == "metadata"


def test_junk_metadata_and_foreign_base_are_warned(concept_dir: Path) -> None:
    folder = concept_dir / "junk"
    folder.mkdir()
    write_kohya(
        folder / "junk.safetensors",
        "lora",
        1e-3,
        1,
        seed=1,
        ss_network_dim="wide",
        ss_network_args="{oops",
        ss_sd_model_hash="deadbeef",
    )
    base = concept_dir / "base.safetensors"
    save_file({"x": torch.zeros(2)}, str(base))
    extra = "checkpoints: [{glob: 'junk/*.safetensors'}]\n"
    config = load_config(write_config(concept_dir, extra))
    config.base_model.source = str(base)
    ckpt = resolve_checkpoints(config)[1]
    assert ckpt.warnings == [
        "junk.safetensors: metadata ss_network_args is not a JSON object; ignored",
        "junk.safetensors: metadata dim='wide' is not a number; ignored",
        "junk.safetensors: trained on another base-model file (ss_sd_model_hash=deadbeef, "
        "ss_sd_model_name=tiny; this base's is e3b0c442)",  # sha256 of no bytes: a tiny file
    ]
    assert "dim" not in ckpt.hyperparameters and ckpt.hyperparameters["algo"] == "lora"


def test_duplicate_names_and_missing_glob(concept_dir: Path, grid: Path) -> None:
    path = "loras/olis-lora-lr0.001-000001.safetensors"
    twice = f"checkpoints: [{{path: {path}}}, {{path: {path}}}]\n"
    with pytest.raises(BenchError, match="duplicate checkpoint name 'olis-lora-lr0.001-000001'"):
        resolve_checkpoints(load_config(write_config(concept_dir, twice)))
    nothing = "checkpoints: [{glob: 'nowhere/*.safetensors'}]\n"
    with pytest.raises(BenchError, match="glob matched no files"):
        resolve_checkpoints(load_config(write_config(concept_dir, nothing)))


def test_multiplier_sweep_adds_rows(concept_dir: Path, grid: Path) -> None:
    extra = (
        "checkpoints:\n  - path: loras/olis-lokr-lr0.001-000003.safetensors\n"
        "    multipliers: [0.5, 1.0]\n"
    )
    rows = resolve_checkpoints(load_config(write_config(concept_dir, extra)))
    assert [r.name for r in rows] == [
        "base",
        "olis-lokr-lr0.001-000003@0.5",
        "olis-lokr-lr0.001-000003@1",
    ]
    assert rows[1].identity != rows[2].identity


def test_inspect_prints_hyperparameters(grid: Path) -> None:
    path = grid / "olis-lokr-lr0.001-000003.safetensors"
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for expected in (
        "lycoris",
        "algo │ lokr │ metadata",
        "lr │ 0.001 │ metadata",
        "dim │ 8 │ metadata",
        "alpha │ 4.0 │ metadata",
        "factor │ 4 │ metadata",
        "epoch │ 3 │ metadata",
        "seed │ 7 │ metadata",
        "tensors: 2",
    ):
        assert expected in text, expected

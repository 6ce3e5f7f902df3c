"""Every checkpoint format detected by ``t2i-bench inspect`` and applied in a whole run, on
SD 1.x- and SDXL-family base models given as diffusers folders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from adapter_files import (
    write_a1111_embedding,
    write_diffusers_lora,
    write_diffusers_lora_checkpoint,
    write_dreambooth_checkpoint,
    write_kohya_embedding,
    write_kohya_lora,
    write_peft_folder,
)
from conftest import write_config
from tiny_models import build_tiny
from typer.testing import CliRunner

from t2i_bench.cli import app


def _run(config: Path, *extra: str) -> pd.DataFrame:
    result = CliRunner().invoke(app, ["run", str(config), *extra])
    assert result.exit_code == 0, result.output
    assert "failure" not in result.output and "failed to load" not in result.output
    return pd.read_csv(config.parent / "out" / "leaderboard.csv")


def _inspect(paths: list[Path], *extra: str) -> str:
    result = CliRunner().invoke(app, ["inspect", *map(str, paths), *extra])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _config(concept_dir: Path, base: Path, paths: list[Path]) -> Path:
    entries = ", ".join(f"{{path: {p}}}" for p in paths)
    config = write_config(concept_dir, f"checkpoints: [{entries}]\n")
    text = config.read_text().replace(
        "base_model: {source: tiny}", f"base_model: {{source: {base}}}"
    )
    config.write_text(text)
    return config


def test_sd1_formats_in_a_run(concept_dir: Path, tmp_path_factory) -> None:
    root = tmp_path_factory.mktemp("sd1-files")
    base = root / "base"
    build_tiny("sd1", 0).save_pretrained(base)
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    paths = [
        write_a1111_embedding(root / "zyx.pt", vectors, name="zyx"),  # binds the trigger
        write_peft_folder(root / "peft-zyx", seed=1)[0],
        write_dreambooth_checkpoint(root / "dreambooth" / "checkpoint-500", seed=2)[0],
        write_diffusers_lora_checkpoint(root / "lora" / "checkpoint-200", seed=3)[0],
    ]
    shown = _inspect(paths, "--allow-pickle")
    for fmt in ("(textual_inversion)", "(peft)", "(diffusers_checkpoint)", "(diffusers_lora)"):
        assert fmt in shown
    board = _run(_config(concept_dir, base, paths), "--allow-pickle")
    assert board.loc[0, "checkpoint"] == "base"
    steps = dict(zip(board["checkpoint"], board["step"].fillna(0).astype(int), strict=True))
    assert steps == {
        "base": 0,
        "zyx": 0,
        "peft-zyx": 0,
        "dreambooth-checkpoint-500": 500,
        "lora-checkpoint-200": 200,
    }
    values = board["clip_i.trigger"]
    assert values.notna().all() and all(v != values[0] for v in values[1:])


def test_sdxl_formats_in_a_run(concept_dir: Path, tmp_path_factory) -> None:
    root = tmp_path_factory.mktemp("sdxl-files")
    base = root / "base-xl"
    pipe = build_tiny("sdxl", 0)
    pipe.save_pretrained(base)
    gen = torch.Generator().manual_seed(4)
    paths = [
        write_kohya_lora(pipe, root / "kohya-xl.safetensors", seed=5),
        write_diffusers_lora(root / "lora-xl", "sdxl", seed=6)[0],
        write_kohya_embedding(
            root / "zyx.safetensors",
            torch.randn(1, 32, generator=gen),
            torch.randn(1, 48, generator=gen),
        ),
    ]
    shown = _inspect(paths)
    assert "kohya-xl.safetensors (lycoris)" in shown and "(diffusers_lora)" in shown
    assert "zyx.safetensors (textual_inversion)" in shown
    board = _run(_config(concept_dir, base, paths))
    assert board.loc[0, "checkpoint"] == "base"
    assert set(board["checkpoint"]) == {"base", "kohya-xl", "lora-xl-pytorch_lora_weights", "zyx"}
    kohya = board.set_index("checkpoint").loc["kohya-xl"]
    assert kohya["algo"] == "lora" and kohya["epoch"] == 2  # from its ss_* metadata
    values = board["clip_i.trigger"]
    assert values.notna().all() and all(v != values[0] for v in values[1:])


@pytest.mark.parametrize("missing", ["glob", "base"])
def test_plan_counts_without_loading(concept_dir: Path, tmp_path: Path, missing: str) -> None:
    from t2i_bench import runner

    folder = tmp_path / "loras"
    folder.mkdir()
    for i in range(3):
        (folder / f"a{i}.safetensors").write_bytes(b"")  # never read by plan
    entries = [f"{{glob: '{folder}/*.safetensors', multipliers: [0.5, 1.0]}}"]
    if missing == "glob":
        entries.append("{glob: 'nowhere/*.safetensors'}")
    extra = f"checkpoints: [{', '.join(entries)}]\n"
    config = write_config(concept_dir, extra)
    if missing == "base":
        text = config.read_text().replace("{source: tiny}", "{source: org/not-downloaded}")
        config.write_text(text)
    result = CliRunner().invoke(app, ["plan", str(config)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "rows: 7 (base + 6 checkpoint rows) x 1 concept(s)" in text
    if missing == "glob":
        assert "note: checkpoints.1: glob matched no files yet" in text
        # the same count as the plan of a run (with real files there)
        empty = write_config(concept_dir, "", name="base-only.yaml")
        run = runner.prepare(empty)
        try:
            base_images = len(run.plan.image_keys)
        finally:
            run.close()
        assert f"images: {7 * base_images} in" in text
        assert "tiny (SD 1.x-like) on cpu float32" in text
    else:
        assert "note: base model family unknown offline: SD 1.x costs assumed" in text


@pytest.mark.parametrize(
    ("example", "family"),
    [
        ("lycoris-sd15.yaml", "SD 1.x"),
        ("concept-insertion-sd15.yaml", "SD 1.x"),
        ("preference-sdxl.yaml", "SDXL"),
        ("recommended.yaml", "SD 1.x"),
    ],
)
def test_example_configs_plan(example: str, family: str) -> None:
    """The real-model examples are valid configs; plan works before any file is there."""
    path = Path(__file__).parents[1] / "examples" / example
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert f"of rendering ({family} on cuda float16" in " ".join(result.output.split())


def test_recommended_example_uses_the_human_aligned_metrics() -> None:
    """recommended.yaml adds the human-aligned metrics beside the founding ones; the founding
    studies' examples keep their original metrics."""
    import yaml

    folder = Path(__file__).parents[1] / "examples"
    metrics = {p.name: yaml.safe_load(p.read_text())["metrics"] for p in folder.glob("*.yaml")}
    human = {"dreamsim", "cmmd", "hpsv2", "aesthetic", "bleed", "copy_rate"}
    assert human <= set(metrics["recommended.yaml"])
    assert {"dino", "clip_i", "clip_t"} <= set(metrics["recommended.yaml"])
    assert metrics["lycoris-sd15.yaml"] == [
        "dino",
        "clip_i",
        "clip_t",
        "scd",
        "vendi",
        "style_loss_base",
        "dino_base",
    ]
    assert metrics["concept-insertion-sd15.yaml"] == ["clip_i", "clip_t", "dino", "fid"]
    assert metrics["preference-sdxl.yaml"] == ["clip_t", "image_reward", "pickscore"]

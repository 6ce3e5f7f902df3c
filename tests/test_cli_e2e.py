"""The CLI end to end on the tiny base model with real LyCORIS files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from adapter_files import write_lycoris_file
from conftest import write_config
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapters")
    pipe = load_base_pipeline("tiny", seed=0)
    write_lycoris_file(pipe, folder / "zyx-lora-000001.safetensors", algo="lora", seed=1)
    write_lycoris_file(pipe, folder / "zyx-loha-000001.safetensors", algo="loha", seed=2)
    return folder


def test_run_resume_and_identical_outputs(concept_dir: Path, adapters: Path) -> None:
    config = write_config(concept_dir, f"checkpoints: [{{glob: '{adapters}/*.safetensors'}}]\n")
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(config)])
    assert first.exit_code == 0, first.output
    assert "rendered 30 images" in first.output  # 3 rows x 5 prompt types x 2 seeds
    board = pd.read_csv(concept_dir / "out" / "leaderboard.csv")
    assert list(board["checkpoint"]) == ["base", "zyx-loha-000001", "zyx-lora-000001"]
    assert list(board["algo"].fillna("")) == ["", "loha", "lora"]
    assert list(board["epoch"].fillna(0)) == [0, 3, 3]  # from ss_epoch, not the file name
    expected = {"clip_i.train", "clip_i.trigger", "clip_i.alter", "clip_t.alter", "clip_t.style"}
    assert expected <= set(board.columns)
    assert board[sorted(expected)].notna().all().all()
    # adapters change the images, so their scores differ from the base row
    assert board.loc[1, "clip_i.trigger"] != board.loc[0, "clip_i.trigger"]

    again = runner.invoke(app, ["run", str(config)])
    assert again.exit_code == 0, again.output
    assert "nothing to render" in again.output and "nothing to score" in again.output

    other = concept_dir / "other"
    third = runner.invoke(app, ["run", str(config), "--output", str(other)])
    assert third.exit_code == 0, third.output
    first_bytes = (concept_dir / "out" / "leaderboard.csv").read_bytes()
    assert (other / "leaderboard.csv").read_bytes() == first_bytes


def test_broken_checkpoint_is_isolated(concept_dir: Path, adapters: Path) -> None:
    bad = concept_dir / "broken.safetensors"
    bad.write_bytes((adapters / "zyx-lora-000001.safetensors").read_bytes()[:200])
    good = adapters / "zyx-lora-000001.safetensors"
    config = write_config(concept_dir, f"checkpoints: [{{path: {good}}}, {{path: {bad}}}]\n")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "warning: broken.safetensors: not a readable safetensors file" in text
    assert "1 failure(s) recorded in the store" in text
    assert f"load broken: {bad}: not a readable safetensors file" in text
    board = pd.read_csv(concept_dir / "out" / "leaderboard.csv")
    assert list(board["checkpoint"]) == ["base", "zyx-lora-000001", "broken"]
    assert board.loc[1, "clip_i.trigger"] == board.loc[1, "clip_i.trigger"]  # scored
    assert pd.isna(board.loc[2, "clip_i.trigger"])  # kept as a row, without values


def test_list_commands() -> None:
    runner = CliRunner()
    metrics = runner.invoke(app, ["list", "metrics"])
    assert metrics.exit_code == 0 and "clip_i" in metrics.output and "clip_t" in metrics.output
    prompts = runner.invoke(app, ["list", "prompts", str(Path(__file__).parents[1] / "prompts")])
    assert prompts.exit_code == 0 and "default" in prompts.output


def test_analyze_any_long_table(tmp_path: Path) -> None:
    """`t2i-bench analyze --table --configs` on 20 configurations x 3 seeds x 3 epochs with
    N/A and empty values writes the SHAP plots and the importance table."""
    from test_analysis import _long_tables

    metrics, configs = _long_tables(20)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    configs.drop(columns=["config_id", "run_id"]).to_csv(tmp_path / "configs.csv", index=False)
    out = tmp_path / "analysis"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            "--table",
            str(tmp_path / "metrics.csv"),
            "--configs",
            str(tmp_path / "configs.csv"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    importance = pd.read_csv(out / "importance.csv")
    top = importance[importance["target"] == "dino_i.trigger"].sort_values("rank").iloc[0]
    assert top["feature"] == "log10_lr" and top["sign"] > 0  # the planted effect
    assert (out / "shap_summary.png").stat().st_size > 10_000
    assert list(out.glob("beeswarm_*.png")) and list(out.glob("dependence_*.png"))
    assert pd.read_csv(out / "r2.csv")["r2_cv"].notna().all()

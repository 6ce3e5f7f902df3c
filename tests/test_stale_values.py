"""No value from older inputs survives in the leaderboard: a rerun on an old folder after a
change gives the leaderboard a fresh run gives (docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from adapter_files import write_lycoris_file
from conftest import write_config
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline


def _run(config: Path, *args: str):
    return CliRunner().invoke(app, ["run", str(config), *args])


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapter")
    return write_lycoris_file(load_base_pipeline("tiny", 0), folder / "a.safetensors", seed=5)


def test_checkpoint_that_fails_to_load_keeps_no_old_values(concept_dir: Path, adapter) -> None:
    path = concept_dir / "a.safetensors"
    path.write_bytes(adapter.read_bytes())
    config = write_config(concept_dir, f"checkpoints: [{{path: {path}}}]\n")
    assert _run(config).exit_code == 0
    board = pd.read_csv(concept_dir / "out" / "leaderboard.csv").set_index("checkpoint")
    metric_columns = [c for c in board.columns if c.startswith(("clip_i.", "clip_t."))]
    assert board.loc["a", metric_columns].notna().all()

    path.write_bytes(adapter.read_bytes()[:300])  # replaced by a corrupt file
    again = _run(config)
    assert again.exit_code == 1 and "load a:" in again.output
    board = pd.read_csv(concept_dir / "out" / "leaderboard.csv").set_index("checkpoint")
    assert board.loc["a", [c for c in metric_columns if c in board]].isna().all()
    metrics = pd.read_csv(concept_dir / "out" / "metrics.csv")
    assert not metrics["checkpoint"].eq("a").any()

    fresh = _run(config, "--output", str(concept_dir / "fresh"))
    assert fresh.exit_code == 1
    old = (concept_dir / "out" / "leaderboard.csv").read_bytes()
    assert old == (concept_dir / "fresh" / "leaderboard.csv").read_bytes()


def test_metric_that_now_fails_keeps_no_old_values(concept_dir: Path) -> None:
    """vendi needs 2 images per prompt: with 1, its old values (over 2 images) must go."""
    config = write_config(concept_dir, "metrics: [clip_i, vendi]\n")
    assert _run(config).exit_code == 0
    assert pd.read_csv(concept_dir / "out" / "leaderboard.csv")["vendi.trigger"].notna().all()
    config = write_config(concept_dir, "metrics: [clip_i, vendi]\nimages_per_prompt: 1\n")
    again = _run(config)
    assert again.exit_code == 1 and "score vendi/base/zyx/trigger: ValueError" in again.output
    board = pd.read_csv(concept_dir / "out" / "leaderboard.csv")
    assert not [c for c in board.columns if c.startswith("vendi.")]
    fresh = _run(config, "--output", str(concept_dir / "fresh"))
    assert fresh.exit_code == 1
    old = (concept_dir / "out" / "leaderboard.csv").read_bytes()
    assert old == (concept_dir / "fresh" / "leaderboard.csv").read_bytes()


def test_changed_clip_t_rule_changes_the_values(concept_dir: Path) -> None:
    config = write_config(concept_dir)
    assert _run(config).exit_code == 0
    concept = concept_dir / "zyx.yaml"
    concept.write_text(concept.read_text() + "clip_t_rule: keep\n")
    assert _run(config).exit_code == 0
    assert _run(config, "--output", str(concept_dir / "fresh")).exit_code == 0
    old = (concept_dir / "out" / "leaderboard.csv").read_bytes()
    assert old == (concept_dir / "fresh" / "leaderboard.csv").read_bytes()

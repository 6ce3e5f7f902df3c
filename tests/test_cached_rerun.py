"""A fully cached rerun loads no model (pipeline, backbone or head) and computes nothing: every
backbone, the human-aligned ones included, is known from its static spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_config
from typer.testing import CliRunner

import t2i_bench.metrics.embed as embed
from t2i_bench.cli import app
from t2i_bench.loads import MODEL_LOADS
from t2i_bench.metrics.base import available_metrics


def test_second_run_loads_no_model(concept_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    heads: list[str] = []  # heads are built once per process: count the asks for one
    load_head = embed.load_head

    def counting_load_head(name: str, *args: object, **kwargs: object) -> object:
        heads.append(name)
        return load_head(name, *args, **kwargs)

    monkeypatch.setattr(embed, "load_head", counting_load_head)
    config = write_config(concept_dir)
    every = f"metrics: [{', '.join(sorted(available_metrics()))}]\n"
    config.write_text(config.read_text().replace("metrics: [clip_i, clip_t]\n", every))
    first = CliRunner().invoke(app, ["run", str(config)])
    assert first.exit_code == 0, first.output
    assert MODEL_LOADS["pipeline"] >= 1 and MODEL_LOADS["backbone"] >= 1
    assert "laion_aesthetic_v2" in heads
    board = (concept_dir / "out" / "leaderboard.csv").read_bytes()
    MODEL_LOADS.clear()
    heads.clear()
    second = CliRunner().invoke(app, ["run", str(config)])
    assert second.exit_code == 0, second.output
    assert "nothing to render" in second.output and "nothing to score" in second.output
    assert dict(MODEL_LOADS) == {} and heads == []
    assert (concept_dir / "out" / "leaderboard.csv").read_bytes() == board

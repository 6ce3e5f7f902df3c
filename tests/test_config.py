"""Config validation: one-line errors naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_config
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.config import load_config
from t2i_bench.errors import BenchError


def test_valid_config_resolves_paths(concept_dir: Path) -> None:
    config = load_config(write_config(concept_dir))
    assert config.output_dir == (concept_dir / "out").resolve()
    assert config.concepts == [(concept_dir / "zyx.yaml").resolve()]
    assert config.sampler.steps == 3 and config.images_per_prompt == 2


def test_output_override(concept_dir: Path, tmp_path: Path) -> None:
    config = load_config(write_config(concept_dir), output_dir=tmp_path / "elsewhere")
    assert config.output_dir == (tmp_path / "elsewhere").resolve()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("colour: red\n", "colour: unknown field"),
        ("seed: many\n", "seed: Input should be a valid integer"),
        ("checkpoints: [{multiplier: 1}]\n", "checkpoints.0: Value error, give exactly one"),
        ("images_per_prompt: 0\n", "images_per_prompt: Input should be greater than or equal"),
    ],
)
def test_invalid_fields(concept_dir: Path, extra: str, expected: str) -> None:
    path = write_config(concept_dir, extra)
    with pytest.raises(BenchError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_missing_concept_file(concept_dir: Path) -> None:
    (concept_dir / "zyx.yaml").unlink()
    with pytest.raises(BenchError, match=r"cfg\.yaml: concepts\.0: concept file not found"):
        load_config(write_config(concept_dir))


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(BenchError, match=r"bad\.yaml: line \d+"):
        load_config(path)


def test_cli_reports_one_line_without_traceback(concept_dir: Path) -> None:
    path = write_config(concept_dir, "sampler: {steps: many}\n", name="broken.yaml")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    text = result.output.strip()
    assert "Traceback" not in text
    assert "broken.yaml" in text and "sampler.steps" in text
    assert len(text.splitlines()) == 1


def test_missing_concept_dir_is_one_line(concept_dir: Path) -> None:
    (concept_dir / "zyx.yaml").write_text("name: zyx\ntrigger: zyx\nimages: nowhere\n")
    result = CliRunner().invoke(app, ["run", str(write_config(concept_dir))])
    assert result.exit_code == 2
    assert "zyx.yaml: images: reference image folder not found" in result.output
    assert "Traceback" not in result.output

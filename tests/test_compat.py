"""Known-incompatible package pairs: named in one line by doctor and where a file needs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from t2i_bench import compat
from t2i_bench.cli import app
from t2i_bench.errors import BenchError

BROKEN = {"transformers": "5.24.0", "peft": "0.21.2"}


def test_the_transformers_peft_pair_is_named_with_its_fix() -> None:
    [line] = compat.conflicts(BROKEN)
    assert "transformers 5.24.0 and peft 0.21.2 are incompatible" in line
    assert "diffusers/PEFT LoRA files" in line and "requirements.lock" in line
    assert "\n" not in line


@pytest.mark.parametrize(
    "versions",
    [
        {"transformers": "5.23.0", "peft": "0.21.2"},
        {"transformers": "5.24.0", "peft": "0.22.0"},
        {"transformers": "5.24.0", "peft": None},
    ],
)
def test_compatible_or_absent_pairs_are_not_reported(versions: dict) -> None:
    assert compat.conflicts(versions) == []
    compat.require_compatible("peft_lora", "x.safetensors", versions)


def test_require_compatible_names_the_file() -> None:
    with pytest.raises(BenchError) as info:
        compat.require_compatible(
            "peft_lora", Path("lora/pytorch_lora_weights.safetensors"), BROKEN
        )
    assert str(info.value).startswith("lora/pytorch_lora_weights.safetensors: transformers 5.24.0")
    compat.require_compatible("some_other_feature", "x", BROKEN)  # other features unaffected


def test_this_environment_has_no_known_conflict() -> None:
    """The lock installs a compatible set; this fails when someone installs a broken pair."""
    assert compat.conflicts() == []


def test_doctor_reports_a_conflict_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "installed_versions", lambda names=None: dict(BROKEN))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "transformers 5.24.0 and peft 0.21.2" in lines[0]
    assert "Traceback" not in result.output


def test_doctor_passes_here() -> None:
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output


def test_loading_a_peft_lora_under_a_conflict_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The adapter loader checks the pair before transformers raises deep inside."""
    from t2i_bench.generation.adapters import AdapterSwitcher

    monkeypatch.setattr(compat, "installed_versions", lambda names=None: dict(BROKEN))
    path = tmp_path / "pytorch_lora_weights.safetensors"
    switcher = AdapterSwitcher.__new__(AdapterSwitcher)
    with pytest.raises(BenchError, match=r"pytorch_lora_weights.safetensors: transformers 5\.24"):
        switcher._apply_diffusers_lora(path, 1.0)

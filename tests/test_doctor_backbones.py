"""``t2i-bench doctor CONFIG``: backbones' weights present and running on the device, the base
model rendering, the disk/time estimate; one line per problem with its fix."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from conftest import REPO, write_config
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.metrics.base import available_metrics


@pytest.fixture(autouse=True)
def _empty_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("T2I_BENCH_CLIP_VIT_L14", raising=False)


def _lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def test_doctor_passes_on_a_tiny_config_with_every_metric(concept_dir: Path) -> None:
    metrics = ", ".join(sorted(available_metrics()))
    config = write_config(concept_dir)
    config.write_text(config.read_text().replace("[clip_i, clip_t]", f"[{metrics}]"))
    result = CliRunner().invoke(app, ["doctor", str(config)])
    assert result.exit_code == 0, result.output
    assert "doctor: no problems found" in result.output
    notes = _lines(result.output, "note: ")
    assert any("images planned" in n for n in notes)
    assert any(n.startswith("note: disk: about") for n in notes)
    assert any(n.startswith("note: time: roughly") for n in notes)
    assert not (concept_dir / "out").exists()  # the doctor writes no run


def test_doctor_names_the_missing_weight_file_in_one_line(concept_dir: Path) -> None:
    config = write_config(concept_dir, "backbones: {profile: real}\n")
    result = CliRunner().invoke(app, ["doctor", str(config)])
    assert result.exit_code == 1
    problems = _lines(result.output, "problem: ")
    assert len(problems) == 1  # clip_i and clip_t need one backbone: CLIP ViT-L/14
    assert "open_clip_pytorch_model.bin" in problems[0]
    assert "hf download laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K" in problems[0]
    assert "backbones.clip.weights" in problems[0]
    assert not _lines(result.output, "note: ")  # no estimate from an incomplete check


def test_doctor_reports_a_backbone_that_does_not_run(concept_dir: Path, monkeypatch) -> None:
    from t2i_bench.backbones.dino import DinoBackbone

    def broken(self, pixels):
        raise RuntimeError("CUDA error: no kernel image is available for execution\ndetails")

    monkeypatch.setattr(DinoBackbone, "_forward_images", broken)
    config = write_config(concept_dir)
    config.write_text(config.read_text().replace("[clip_i, clip_t]", "[clip_i, dino]"))
    result = CliRunner().invoke(app, ["doctor", str(config)])
    assert result.exit_code == 1
    problems = _lines(result.output, "problem: ")
    assert len(problems) == 1
    assert problems[0].startswith("problem: backbone dino (dinov2_vitl14, tiny) does not run on")
    assert "no kernel image" in problems[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_doctor_on_a_missing_device_is_one_line(concept_dir: Path) -> None:
    config = write_config(concept_dir, "device: cuda\n")
    result = CliRunner().invoke(app, ["doctor", str(config)])
    assert result.exit_code == 1
    problems = _lines(result.output, "problem: ")
    assert len(problems) == 1 and "this machine has no cuda device" in problems[0]


@pytest.mark.slow
def test_doctor_passes_on_the_quickstart() -> None:
    """examples/quickstart.yaml after `t2i-bench demo` (built here if not cached)."""
    from t2i_bench.demo import build_demo

    build_demo(REPO / ".cache" / "demo")
    result = CliRunner().invoke(app, ["doctor", str(REPO / "examples" / "quickstart.yaml")])
    assert result.exit_code == 0, result.output

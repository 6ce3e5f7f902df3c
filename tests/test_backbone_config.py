"""Backbone weights, tokenizers and processors in the run config; a run checks them first."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import yaml
from conftest import write_config

from t2i_bench.config import load_config
from t2i_bench.errors import BenchError
from t2i_bench.metrics.embed import Backbones


@pytest.fixture(autouse=True)
def _empty_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("T2I_BENCH_VGG19_WEIGHTS", raising=False)
    monkeypatch.delenv("T2I_BENCH_DINO_VITS16", raising=False)
    monkeypatch.delenv("T2I_BENCH_CLIP_VIT_L14", raising=False)


def _vgg_file(path: Path) -> Path:
    from t2i_bench.backbones.vgg import build_tiny_vgg

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in build_tiny_vgg().state_dict().items()}, path)
    return path


def test_plain_names_still_work(concept_dir: Path) -> None:
    config = load_config(write_config(concept_dir, "backbones: {clip: clip_vit_b32}\n"))
    assert config.backbones.role("clip") == ("clip_vit_b32", {})
    assert config.backbones.role("dino") == ("dinov2_vitl14", {})
    assert config.backbones.role("some_plugin") == ("some_plugin", {})


def test_options_reach_the_loader_with_paths_resolved_against_the_config(
    concept_dir: Path,
) -> None:
    vgg = _vgg_file(concept_dir / "models" / "vgg.pth")
    extra = (
        "backbones:\n"
        "  profile: real\n"
        "  clip: {name: clip_vit_b32, weights: hf-hub:org/some-clip}\n"
        "  vgg: {weights: models/vgg.pth, size: 64, cfg: [8, M, 16, M, 32, 32, 32, 32, M, "
        "64, 64, 64, 64, M, 64, 64, 64, 64, M]}\n"
        "  dino: {name: dino_vits16, processor: ./proc, weights: ~/dino}\n"
    )
    config = load_config(write_config(concept_dir, extra))
    name, options = config.backbones.role("vgg")
    assert name == "vgg19_gram" and options["weights"] == str(vgg.resolve())
    assert options["size"] == 64
    assert config.backbones.role("clip") == ("clip_vit_b32", {"weights": "hf-hub:org/some-clip"})
    _, dino = config.backbones.role("dino")
    assert dino == {"processor": "./proc", "weights": str(Path("~/dino").expanduser())}
    # the loader gets them: the spec names the configured file
    spec = Backbones(config.backbones).spec("vgg")
    assert spec.weight_files == (str(vgg.resolve()),) and "64" in spec.preprocessing
    # the resolved config (saved into the run) reads back the same
    dumped = yaml.safe_load(json.dumps(config.model_dump(mode="json")))
    again = type(config).model_validate(dumped)
    assert again.backbones.role("vgg") == config.backbones.role("vgg")


def test_environment_variables_are_still_honoured(concept_dir: Path, monkeypatch) -> None:
    vgg = _vgg_file(concept_dir / "env" / "vgg19.pth")
    monkeypatch.setenv("T2I_BENCH_VGG19_WEIGHTS", str(vgg))
    extra = "backbones: {profile: real, vgg: {cfg: [8, M], size: 64}}\n"
    config = load_config(write_config(concept_dir, extra))
    assert Backbones(config.backbones).spec("vgg").weight_files == (str(vgg),)
    # and the config wins over the environment
    other = _vgg_file(concept_dir / "cfg" / "vgg19.pth")
    extra = f"backbones: {{profile: real, vgg: {{weights: {other}, cfg: [8, M], size: 64}}}}\n"
    config = load_config(write_config(concept_dir, extra, name="b.yaml"))
    assert Backbones(config.backbones).spec("vgg").weight_files == (str(other),)


def test_bad_backbone_choices_are_one_line(concept_dir: Path) -> None:
    with pytest.raises(BenchError, match="clip.name must be one of"):
        load_config(write_config(concept_dir, "backbones: {clip: {name: clip_vit_h14}}\n"))
    config = load_config(write_config(concept_dir, "backbones: {clip: {tokenizer: x}}\n"))
    with pytest.raises(BenchError, match="backbone clip_vit_l14 has no option 'tokenizer'"):
        Backbones(config.backbones).spec("clip")


def test_run_fails_on_missing_weights_before_any_work(concept_dir: Path) -> None:
    from t2i_bench import runner

    path = write_config(concept_dir, "backbones: {profile: real}\n")
    with pytest.raises(BenchError) as err:
        runner.prepare(path)
    message = str(err.value)
    assert "\n" not in message and "open_clip_pytorch_model.bin" in message
    assert "backbones.clip.weights" in message
    assert not (concept_dir / "out").exists()  # nothing planned, rendered or written

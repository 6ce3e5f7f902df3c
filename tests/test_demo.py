"""The offline demo builder: procedural data, the olis concept, kohya adapters, caching."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import yaml
from diffusers import StableDiffusionPipeline
from lycoris.kohya import create_network_from_weights
from safetensors import safe_open

from t2i_bench.demo.base import (
    BASE_FILE,
    base_metadata,
    load_base,
    module_state,
    save_base,
    state_sha256,
)
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
from t2i_bench.errors import BenchError
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
    algos=("lora",),
    learning_rates=(1e-3,),
    epochs=1,
    repeats=1,
    num_threads=1,
)


def test_build_demo_is_cached_and_atomic(tmp_path, tmp_path_factory) -> None:
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
    other_base = tmp_path_factory.mktemp("base") / "base.safetensors"
    components = load_base()
    with torch.no_grad():
        components["unet"].conv_out.bias.add_(1e-3)
    save_base(components, other_base, _recipe_of(BASE_FILE), {})
    assert load_demo(out, MICRO, base_file=other_base) is None  # nor are other base weights
    adapter_bytes = [p.read_bytes() for p in demo.adapters]
    rebuilt = build_demo(out, force=True, recipe=MICRO)
    assert rebuilt.info["base_model_hash"] == demo.info["base_model_hash"]  # deterministic
    assert [p.read_bytes() for p in rebuilt.adapters] == adapter_bytes  # byte for byte
    with safe_open(str(rebuilt.adapters[0]), "pt") as handle:  # still a valid file
        assert handle.metadata() == meta and len(list(handle.keys())) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def _recipe_of(path: Path):
    from t2i_bench.demo.base import BaseRecipe

    return BaseRecipe(**json.loads(base_metadata(path)["recipe"]))


def test_committed_base_is_small_and_loads_the_trained_weights() -> None:
    """The file leaves out only token rows equal to the seeded initialisation."""
    assert BASE_FILE.stat().st_size < 5 * 2**20
    meta = base_metadata()
    components = load_base()  # checks the recorded hash of the trained weights itself
    assert state_sha256(module_state(components)) == meta["state_sha256"]
    initial = build_tiny_components(_recipe_of(BASE_FILE).seed)
    table = components["text_encoder"].get_input_embeddings().weight
    start = initial["text_encoder"].get_input_embeddings().weight
    trained = (table != start).any(dim=1).nonzero().flatten().tolist()
    assert 10 <= len(trained) <= 200  # the captions' tokens (and BOS/EOS), nothing else
    assert components["vae"].config.scaling_factor == float(meta["vae_scaling_factor"])
    tokens = components["tokenizer"]("a red circle on a blue background").input_ids
    assert set(tokens) <= set(trained)


def test_a_changed_base_file_is_refused(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(BASE_FILE))
    key = next(k for k in tensors if k.startswith("unet."))
    tensors[key] = tensors[key] + 1e-6
    bad = tmp_path / "base.safetensors"
    save_file(tensors, str(bad), metadata=base_metadata())
    with pytest.raises(BenchError, match="does not reproduce the trained weights"):
        load_base(bad)


@pytest.mark.slow
def test_full_demo_moves_toward_concept() -> None:
    """The full build (cached in .cache/demo): the adapters change the images, and the low-lr
    ones bring their colours nearer the olis references than the base model's (the quickstart
    tests check what the quickstart's metrics show: tests/test_demo_planted.py)."""
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
        assert dist[f"olis-{algo}-lr{_lr(low)}-000003"] < dist["base"] - 0.05, dist
        assert dist[f"olis-{algo}-lr{_lr(high)}-000003"] != dist["base"], dist


@pytest.mark.slow
def test_quickstart_high_lr_adapters_beat_the_base_on_trigger_clip_i(tmp_path) -> None:
    """What the quickstart shows: every high-lr adapter's last epoch scores CLIP-I on trigger
    prompts above the base model (the quickstart's config, sampler, seeds and backbones;
    only clip_i on trigger prompts is computed)."""
    from t2i_bench import runner

    demo = build_demo(REPO / ".cache" / "demo")
    text = (REPO / "examples" / "quickstart.yaml").read_text().replace("../", f"{REPO}/")
    text = re.sub(r"metrics: \[[^\]]*\]", "metrics: [clip_i]", text)
    text = text.replace("  max_per_type: 4\n", "  max_per_type: 4\n  types: [trigger]\n")
    config = tmp_path / "quickstart.yaml"
    config.write_text(text)
    run = runner.prepare(config, output_dir=tmp_path / "out")
    try:
        assert run.base.path is None and len(run.plan.checkpoints) == 19
        runner.generate(run)
        runner.embed(run)
        runner.score(run)
        rows = run.store.conn.execute(
            "SELECT checkpoint, AVG(value) FROM scores WHERE metric = 'clip_i' "
            "AND prompt_type = 'trigger' GROUP BY checkpoint"
        ).fetchall()
    finally:
        run.close()
    clip_i = dict(rows)
    base = clip_i.pop("base")
    high = _lr(max(demo.info["recipe"]["learning_rates"]))
    last = [n for n in clip_i if f"-lr{high}-" in n and n.endswith("-000003")]
    assert len(last) == 3 and len(clip_i) == 18
    assert all(clip_i[n] > base for n in last), (base, clip_i)


def _lr(x: float) -> str:
    from t2i_bench.demo.train_adapters import format_lr

    return format_lr(x)

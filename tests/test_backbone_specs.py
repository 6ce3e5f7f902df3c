"""Static backbone specs: describing a backbone loads nothing, yet its spec is what the loaded
model does (same preprocessing, same identity), for every built-in backbone (tiny) and for
real-format files (local folders, the Hugging Face cache layout, the torch hub folder).
Missing or broken weights are one line naming the file and where to put it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from hubcache import HubCache
from PIL import Image
from safetensors.torch import save_file

from t2i_bench.backbones import base
from t2i_bench.backbones.base import (
    available_backbones,
    describe_backbone,
    load_backbone,
)
from t2i_bench.errors import BenchError
from t2i_bench.loads import MODEL_LOADS

BUILT_IN = [
    "clip_vit_b32",
    "clip_vit_l14",
    "dinov2_vitl14",
    "dino_vits16",
    "inception_v3_fid",
    "lpips_alex",
    "vgg19_gram",
    "pickscore",
    "image_reward",
    "dreamsim",
    "hpsv2",
    "clip_vit_l14_336",
]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in (
        "T2I_BENCH_CLIP_VIT_B32",
        "T2I_BENCH_CLIP_VIT_L14",
        "T2I_BENCH_DINOV2_VITL14",
        "T2I_BENCH_DINO_VITS16",
        "T2I_BENCH_INCEPTION_WEIGHTS",
        "T2I_BENCH_LPIPS_WEIGHTS",
        "T2I_BENCH_ALEXNET_WEIGHTS",
        "T2I_BENCH_VGG19_WEIGHTS",
        "T2I_BENCH_PICKSCORE",
        "T2I_BENCH_PICKSCORE_PROCESSOR",
        "T2I_BENCH_IMAGEREWARD",
        "T2I_BENCH_IMAGEREWARD_TOKENIZER",
        "T2I_BENCH_DREAMSIM",
        "T2I_BENCH_HPSV2",
        "T2I_BENCH_CLIP_VIT_L14_336",
    ):
        monkeypatch.delenv(var, raising=False)
    import t2i_bench.backbones.dreamsim as dreamsim

    monkeypatch.setattr(dreamsim, "DEFAULT_ROOT", str(tmp_path / "dreamsim-cache"))


@pytest.fixture()
def hub(tmp_path: Path) -> HubCache:
    return HubCache(tmp_path / "hf-cache")


def _torch_hub(tmp_path: Path) -> Path:
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)) for _ in range(n)]


def describe_without_loading(
    monkeypatch: pytest.MonkeyPatch, name: str, profile: str, **options: object
) -> base.BackboneSpec:
    """Describe ``name`` while building any torch module or calling any factory raises."""
    loads = MODEL_LOADS["backbone"]
    with monkeypatch.context() as patch:

        def no_module(self, *args, **kwargs):
            raise AssertionError(f"describing {name} constructed {type(self).__name__}")

        def no_factory(*args, **kwargs):
            raise AssertionError(f"describing {name} called its factory")

        patch.setattr(torch.nn.Module, "__init__", no_module)
        entry = base._entry(name)
        patch.setitem(base._REGISTRY, name, base._Entry(no_factory, entry.describe))
        spec = describe_backbone(name, profile, **options)
    assert MODEL_LOADS["backbone"] == loads
    return spec


def assert_spec_is_the_loaded_model(
    monkeypatch: pytest.MonkeyPatch, name: str, profile: str, **options: object
) -> tuple[base.BackboneSpec, base.Backbone]:
    spec = describe_without_loading(monkeypatch, name, profile, **options)
    loads = MODEL_LOADS["backbone"]
    backbone = load_backbone(name, profile, "cpu", **options)
    assert MODEL_LOADS["backbone"] == loads + 1
    assert backbone.preprocessing == spec.preprocessing
    assert backbone.identity == spec.identity
    assert backbone.spec == spec
    for path in spec.weight_files:
        assert os.path.isfile(path), path
    return spec, backbone


def test_every_built_in_backbone_has_a_describer() -> None:
    assert set(BUILT_IN) <= set(available_backbones())
    for name in BUILT_IN:
        assert base._entry(name).describe is not None, name


@pytest.mark.parametrize("name", BUILT_IN)
def test_tiny_spec_is_the_loaded_model_and_loads_nothing(name, monkeypatch) -> None:
    spec, backbone = assert_spec_is_the_loaded_model(monkeypatch, name, "tiny")
    assert spec.profile == "tiny" and spec.weight_files == ()
    assert spec.identity.startswith(f"{name}|tiny|v")
    # the describer's spec is stable: the same identity on each call, batch size ignored
    assert describe_backbone(name, "tiny", batch_size=3).identity == spec.identity


# ------------------------------------------------------------- real-format fixtures


def _clip_hub_dir(folder: Path) -> Path:
    import open_clip

    from t2i_bench.backbones.clip import TINY_CLIP_CFG, build_tiny_clip

    folder.mkdir(parents=True)
    cfg = {
        "model_cfg": TINY_CLIP_CFG,
        "preprocess_cfg": {
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    sd = {k: v.contiguous() for k, v in build_tiny_clip().state_dict().items()}
    save_file(sd, str(folder / "open_clip_model.safetensors"))
    return folder


def _dino_dir(name: str, folder: Path) -> Path:
    from t2i_bench.backbones.dino import build_tiny_dino, tiny_processor

    build_tiny_dino(name).save_pretrained(folder)
    tiny_processor(name).save_pretrained(folder)
    return folder


def _pickscore_dir(folder: Path) -> Path:
    from t2i_bench.backbones.pickscore import build_tiny_pickscore, tiny_processor

    build_tiny_pickscore().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


def _lpips_files(tmp_path: Path) -> tuple[Path, Path]:
    """A torchvision-format AlexNet file and an lpips-format alex.pth from the tiny model."""
    from t2i_bench.backbones.lpips_net import build_tiny_lpips

    net = build_tiny_lpips()
    features = {}
    for (a, _), s in zip(((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)), net.slices, strict=True):
        for key, value in s.state_dict().items():
            index, rest = key.split(".", 1)
            features[f"features.{a + int(index)}.{rest}"] = value
    alex = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({**features, "classifier.1.weight": torch.zeros(2, 2)}, alex)
    lin = tmp_path / "alex.pth"
    torch.save(
        {f"lin{i}.model.1.weight": getattr(net, f"w{i}").view(1, -1, 1, 1) for i in range(5)}, lin
    )
    return alex, lin


def _image_reward_dir(folder: Path) -> Path:
    from t2i_bench.backbones.image_reward import (
        build_tiny_image_reward,
        tiny_med_config,
        to_image_reward_state_dict,
    )

    folder.mkdir(parents=True)
    model, tok = build_tiny_image_reward()
    torch.save(to_image_reward_state_dict(model), folder / "ImageReward.pt")
    (folder / "med_config.json").write_text(json.dumps(tiny_med_config(tok)))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])[:-2]
    (folder / "vocab.txt").write_text("\n".join(t for t, _ in vocab))
    return folder


def test_real_clip_folder_and_file(tmp_path, monkeypatch) -> None:
    import open_clip

    from t2i_bench.backbones.clip import TINY_CLIP_CFG, build_tiny_clip

    folder = _clip_hub_dir(tmp_path / "clip")
    spec, real = assert_spec_is_the_loaded_model(
        monkeypatch, "clip_vit_l14", "real", weights=str(folder)
    )
    assert [Path(p).name for p in spec.weight_files] == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    tiny = load_backbone("clip_vit_l14", "tiny")
    assert spec.preprocessing == tiny.preprocessing
    np.testing.assert_allclose(
        real.embed_images(_images()), tiny.embed_images(_images()), atol=1e-6
    )
    # a training checkpoint file of an architecture (open_clip's own format)
    (tmp_path / "t2i-tiny-clip.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path / "t2i-tiny-clip.json")
    ckpt = tmp_path / "epoch_1.pt"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in build_tiny_clip().state_dict().items()}}, ckpt
    )
    spec, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "clip_vit_b32", "real", weights=str(ckpt), arch="t2i-tiny-clip"
    )
    assert spec.weight_files == (str(ckpt),) and spec.architecture == "open_clip t2i-tiny-clip"


def test_real_clip_hf_hub_id_through_the_cache(tmp_path, monkeypatch, hub) -> None:
    snapshot = hub.put_folder("org/tiny-clip", _clip_hub_dir(tmp_path / "clip"))
    spec, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "clip_vit_l14", "real", weights="hf-hub:org/tiny-clip"
    )
    assert {str(Path(p).parent) for p in spec.weight_files} == {str(snapshot)}
    assert spec.weights == "hf-hub:org/tiny-clip"


@pytest.mark.parametrize("name", ["dinov2_vitl14", "dino_vits16"])
def test_real_dino_folder_and_hub_cache(name, tmp_path, monkeypatch, hub) -> None:
    from t2i_bench.backbones.dino import SPECS

    folder = _dino_dir(name, tmp_path / name)
    local, _ = assert_spec_is_the_loaded_model(monkeypatch, name, "real", weights=str(folder))
    assert [Path(p).name for p in local.weight_files] == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    assert local.preprocessing == describe_backbone(name, "tiny").preprocessing
    # the published hub id, read from the Hugging Face cache layout
    snapshot = hub.put_folder(SPECS[name].hub_id, folder)
    cached, _ = assert_spec_is_the_loaded_model(monkeypatch, name, "real")
    assert all(Path(p).parent == snapshot for p in cached.weight_files)
    assert cached.weights == SPECS[name].hub_id
    # the same file contents give the same identity, wherever they are
    assert cached.identity == local.identity


def test_real_pickscore_folder_and_hub_cache(tmp_path, monkeypatch, hub) -> None:
    from t2i_bench.backbones.pickscore import MODEL_ID, PROCESSOR_ID, tiny_processor

    folder = _pickscore_dir(tmp_path / "pickscore")
    assert_spec_is_the_loaded_model(monkeypatch, "pickscore", "real", weights=str(folder))
    # published layout: the model repo without a processor, the processor from the LAION repo
    model_only = tmp_path / "model-only"
    model_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, model_only / name)
    hub.put_folder(MODEL_ID, model_only)
    published = tmp_path / "processor"  # as the LAION repo: preprocessor_config.json + tokenizer
    processor = tiny_processor()
    processor.image_processor.save_pretrained(published)
    processor.tokenizer.save_pretrained(published)
    proc = hub.put_folder(PROCESSOR_ID, published)
    spec, real = assert_spec_is_the_loaded_model(monkeypatch, "pickscore", "real")
    assert spec.weights == MODEL_ID
    names = {Path(p).name for p in spec.weight_files}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
    } <= names
    assert any(Path(p).parent == proc for p in spec.weight_files)
    tiny = load_backbone("pickscore", "tiny")
    np.testing.assert_allclose(
        real.embed_images(_images()), tiny.embed_images(_images()), atol=1e-6
    )


def test_real_inception_lpips_vgg_files(tmp_path, monkeypatch) -> None:
    from t2i_bench.backbones.inception import tiny_inception_state_dict
    from t2i_bench.backbones.vgg import TINY_CFG, build_tiny_vgg

    checkpoints = _torch_hub(tmp_path)
    torch.save(tiny_inception_state_dict(), checkpoints / "pt_inception-2015-12-05-6726825d.pth")
    spec, _ = assert_spec_is_the_loaded_model(monkeypatch, "inception_v3_fid", "real")
    assert spec.weights == "pt_inception-2015-12-05" and "299x299" in spec.preprocessing

    alex, lin = _lpips_files(tmp_path)
    shutil.copy(alex, checkpoints / alex.name)
    spec, real = assert_spec_is_the_loaded_model(
        monkeypatch, "lpips_alex", "real", weights=str(lin), size=64
    )
    assert [Path(p).name for p in spec.weight_files] == [alex.name, "alex.pth"]
    tiny = load_backbone("lpips_alex", "tiny")
    np.testing.assert_allclose(
        real.embed_images(_images()), tiny.embed_images(_images()), atol=1e-6
    )

    vgg = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in build_tiny_vgg().state_dict().items()}, vgg)
    spec, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "vgg19_gram", "real", weights=str(vgg), cfg=TINY_CFG, size=64
    )
    assert spec.weight_files == (str(vgg),)


def test_real_image_reward_package_fixture_and_hub_cache(tmp_path, monkeypatch, hub) -> None:
    from t2i_bench.backbones.image_reward import HUB_ID, TOKENIZER_ID

    fixture = FIXTURES / "image_reward"
    spec, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "image_reward", "real", weights=str(fixture)
    )
    assert [Path(p).name for p in spec.weight_files] == [
        "ImageReward.pt",
        "med_config.json",
        "vocab.txt",
    ]
    assert "resize shortest side to 64" in spec.preprocessing  # read from the tensor shapes
    folder = _image_reward_dir(tmp_path / "ir")
    local, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "image_reward", "real", weights=str(folder / "ImageReward.pt")
    )
    assert local.preprocessing == describe_backbone("image_reward", "tiny").preprocessing
    # published layout: the checkpoint repo and bert-base-uncased's tokenizer, from the cache
    for name in ("ImageReward.pt", "med_config.json"):
        hub.put(HUB_ID, name, folder / name)
    hub.put(TOKENIZER_ID, "vocab.txt", folder / "vocab.txt")
    cached, _ = assert_spec_is_the_loaded_model(monkeypatch, "image_reward", "real")
    assert cached.weights == HUB_ID
    assert cached.identity == local.identity  # same contents, other place


# ---------------------------------------------- human-aligned backbones (published layouts)


def _fixture_module(name: str):
    """The ``make_fixture`` module of a package-built fixture (its deterministic images)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"{name}_fixture", FIXTURES / name / "make_fixture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads((FIXTURES / name / "expected.json").read_text())


DREAMSIM_FILES = [
    "checkpoints/dino_vitbase16_pretrain.pth",
    "clip_vitb16_pretrain.pth.tar",
    "open_clip_vitb16_pretrain.pth.tar",
    "ensemble_lora/adapter_config.json",
    "ensemble_lora/adapter_model.safetensors",
]


def _copy_files(src: Path, dst: Path, names: list[str]) -> Path:
    for name in names:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name, dst / name)
    return dst


def test_real_dreamsim_package_cache_layout(tmp_path, monkeypatch) -> None:
    """The dreamsim 0.2.1 cache folder built by the package's own code: the spec names the
    four tower/adapter files and the DINO backbone (not the zip's unused DINO head), and a
    folder holding only those files gives the package's embeddings."""
    import t2i_bench.backbones.dreamsim as ds

    fixture, expected = _fixture_module("dreamsim")
    cache = FIXTURES / "dreamsim" / "cache"
    spec, _ = assert_spec_is_the_loaded_model(monkeypatch, "dreamsim", "real", weights=str(cache))
    assert [os.path.relpath(p, cache) for p in spec.weight_files] == DREAMSIM_FILES
    assert (cache / "dino_vitb16_pretrain.pth").is_file()  # in the zip, never read
    assert "224x224" in spec.preprocessing  # read from the towers' tensor shapes
    # the default folder, with the DINO backbone where torch hub keeps it
    root = _copy_files(cache, Path(ds.DEFAULT_ROOT), DREAMSIM_FILES[1:])
    shutil.copy(cache / DREAMSIM_FILES[0], _torch_hub(tmp_path) / "dino_vitbase16_pretrain.pth")
    published, real = assert_spec_is_the_loaded_model(monkeypatch, "dreamsim", "real")
    assert published.weights == ds.PUBLISHED_LABEL
    assert Path(published.weight_files[0]).parent == _torch_hub(tmp_path)
    assert all(Path(p).is_relative_to(root) for p in published.weight_files[1:])
    assert published.identity == spec.identity  # the same contents elsewhere
    np.testing.assert_allclose(
        real.embed_images(fixture.images()), expected["embeddings"], atol=1e-5, rtol=0
    )
    # the cache folder's own DINO file wins over the torch hub one, as in the package
    other = tmp_path / "other-dino.pth"
    sd = torch.load(cache / DREAMSIM_FILES[0], weights_only=True)
    torch.save({k: v + 0.01 for k, v in sd.items()}, other)
    shutil.copy(other, _torch_hub(tmp_path) / "dino_vitbase16_pretrain.pth")
    assert describe_backbone("dreamsim", "real").identity != spec.identity
    _copy_files(cache, root, DREAMSIM_FILES[:1])
    assert describe_backbone("dreamsim", "real").identity == spec.identity


def test_real_dreamsim_adapter_file_is_the_one_peft_reads(tmp_path, monkeypatch) -> None:
    """PEFT reads adapter_model.safetensors when present, else adapter_model.bin: so does the
    spec, and a .bin-only adapter (older PEFT, as in the published zip) gives the same
    embeddings."""
    from safetensors.torch import load_file

    fixture, expected = _fixture_module("dreamsim")
    root = _copy_files(FIXTURES / "dreamsim" / "cache", tmp_path / "cache", DREAMSIM_FILES)
    lora = root / "ensemble_lora"
    torch.save(load_file(lora / "adapter_model.safetensors"), lora / "adapter_model.bin")
    both = describe_backbone("dreamsim", "real", weights=str(root))
    assert Path(both.weight_files[-1]).name == "adapter_model.safetensors"
    both_identity = both.identity
    (lora / "adapter_model.safetensors").unlink()
    spec, real = assert_spec_is_the_loaded_model(monkeypatch, "dreamsim", "real", weights=str(root))
    assert Path(spec.weight_files[-1]).name == "adapter_model.bin"
    assert spec.identity != both_identity
    np.testing.assert_allclose(
        real.embed_images(fixture.images()), expected["embeddings"], atol=1e-5, rtol=0
    )


def test_real_dreamsim_missing_or_broken_files_are_one_line(tmp_path, monkeypatch) -> None:
    import t2i_bench.backbones.dreamsim as ds

    cache = FIXTURES / "dreamsim" / "cache"
    root = Path(ds.DEFAULT_ROOT)

    def error(missing: bool = True) -> str:
        with pytest.raises(BenchError) as err:
            describe_without_loading(monkeypatch, "dreamsim", "real")
        message = str(err.value)
        assert "\n" not in message
        if missing:  # where to put it: the config key and the environment variable
            assert "backbones.dreamsim.weights" in message and "T2I_BENCH_DREAMSIM" in message
        return message

    message = error()  # nothing there: the published zip, and where to unzip it
    assert ds.CHECKPOINT_URL in message and f"{root}/" in message
    _copy_files(cache, root, DREAMSIM_FILES[1:])
    message = error()  # then the DINO backbone torch hub would fetch, and both places for it
    assert "dino_vitbase16_pretrain.pth" in message and ds.DINO_URL in message
    assert str(root / "checkpoints") in message and str(_torch_hub(tmp_path)) in message
    _copy_files(cache, root, DREAMSIM_FILES[:1])
    assert describe_without_loading(monkeypatch, "dreamsim", "real").weight_files
    (root / DREAMSIM_FILES[-1]).unlink()
    message = error()
    assert (
        "LoRA adapter" in message and "adapter_model.safetensors (or adapter_model.bin)" in message
    )
    _copy_files(cache, root, DREAMSIM_FILES[-1:])
    (root / DREAMSIM_FILES[1]).write_bytes(b"<html>rate limited</html>")
    message = error(missing=False)
    assert ds.CHECKPOINT_URL in message  # where to get it again
    assert f"{root / DREAMSIM_FILES[1]}: cannot read DreamSim clip weights" in message
    with pytest.raises(BenchError, match="cannot read DreamSim clip weights"):
        load_backbone("dreamsim", "real")  # the loader stops at the same line, before any work


def _hps_arch() -> str:
    """Register the fixture's small CLIP config with open_clip (as the hpsv2 test does)."""
    import tempfile

    import open_clip

    _, expected = _fixture_module("hpsv2")
    folder = Path(tempfile.mkdtemp(prefix="hps-arch-"))
    (folder / f"{expected['arch']}.json").write_text(json.dumps(expected["config"]))
    open_clip.add_model_config(folder / f"{expected['arch']}.json")
    return expected["arch"]


def test_real_hpsv2_file_and_hub_cache(tmp_path, monkeypatch, hub) -> None:
    """HPS_v2.1_compressed.pt built and scored by the hpsv2 1.2.0 package: the spec is that
    one file, from a path or from the Hugging Face cache, and the loaded model gives the
    package's scores."""
    from t2i_bench.backbones.hpsv2 import FILENAME, HUB_ID
    from t2i_bench.metrics.functional import clip_score

    arch = _hps_arch()
    fixture, expected = _fixture_module("hpsv2")
    path = FIXTURES / "hpsv2" / FILENAME
    local, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "hpsv2", "real", weights=str(path), arch=arch
    )
    assert local.weight_files == (str(path),) and "zero-pad centred to 56x56" in local.preprocessing
    assert local.settings["open_clip_model_cfg"] == expected["config"]
    hub.put(HUB_ID, FILENAME, path)
    cached, real = assert_spec_is_the_loaded_model(monkeypatch, "hpsv2", "real", arch=arch)
    assert cached.weights == f"{HUB_ID}/{FILENAME}" and cached.identity == local.identity
    img = real.embed_images(fixture.images())
    txt = real.embed_texts(fixture.PROMPTS)
    index = {p: i for i, p in enumerate(fixture.PROMPTS)}
    cases = expected["cases"]
    ours = [
        clip_score(img[c["image"] : c["image"] + 1], txt[index[c["prompt"]]], "raw")[0]
        for c in cases
    ]
    np.testing.assert_allclose(ours, [c["score"] for c in cases], atol=1e-5, rtol=0)


def test_real_hpsv2_published_architecture(tmp_path, monkeypatch, hub) -> None:
    """With the default ViT-H-14, the spec's preprocessing is what the published-size model
    (built on the meta device) does; the checkpoint's shapes are checked against it."""
    import open_clip

    from t2i_bench.backbones.hpsv2 import ARCH, FILENAME, HUB_ID, HpsV2Backbone

    cfg = open_clip.get_model_config(ARCH)
    width, patch = cfg["vision_cfg"]["width"], cfg["vision_cfg"]["patch_size"]
    shapes = {  # the two tensors the describer checks, at ViT-H-14's sizes
        "visual.conv1.weight": (width, 3, patch, patch),
        "text_projection": (cfg["text_cfg"]["width"], cfg["embed_dim"]),
    }
    ckpt = tmp_path / FILENAME
    torch.save(
        {"state_dict": {k: torch.zeros(s, dtype=torch.float16) for k, s in shapes.items()}}, ckpt
    )
    hub.put(HUB_ID, FILENAME, ckpt)
    spec = describe_without_loading(monkeypatch, "hpsv2", "real")
    assert spec.architecture == f"open_clip {ARCH}" and spec.weights == f"{HUB_ID}/{FILENAME}"
    model = open_clip.create_model(ARCH, device="meta")
    backbone = HpsV2Backbone(model, open_clip.get_tokenizer(ARCH), "real", "x", device="meta")
    assert backbone.preprocessing == spec.preprocessing and "224x224" in spec.preprocessing
    shapes["text_projection"] = (cfg["text_cfg"]["width"], 512)  # another CLIP's projection
    torch.save({"state_dict": {k: torch.zeros(s) for k, s in shapes.items()}}, ckpt)
    with pytest.raises(BenchError, match=r"text_projection is \(1024, 512\), ViT-H-14 has"):
        describe_backbone("hpsv2", "real", weights=str(ckpt))


def test_real_hpsv2_broken_or_foreign_checkpoint_is_one_line(tmp_path, monkeypatch) -> None:
    arch = _hps_arch()
    html = tmp_path / "HPS_v2.1_compressed.pt"
    html.write_bytes(b"<html>rate limited</html>")
    cases = [
        ({"weights": str(html)}, "cannot read the HPS v2 checkpoint", html),
        (  # the fixture's small CLIP is not ViT-H-14
            {"weights": str(FIXTURES / "hpsv2" / html.name)},
            "does not fit open_clip ViT-H-14: visual.conv1.weight is (32, 3, 14, 14)",
            FIXTURES / "hpsv2" / html.name,
        ),
        ({"weights": str(html), "arch": "ViT-Q-99"}, "unknown open_clip architecture", None),
    ]
    for options, text, path in cases:
        for call in (describe_backbone, load_backbone):
            with pytest.raises(BenchError) as err:
                call("hpsv2", "real", **options)
            message = str(err.value)
            assert "\n" not in message and text in message, message
            assert path is None or message.startswith(f"{path}: ")
    assert describe_backbone(
        "hpsv2", "real", weights=str(FIXTURES / "hpsv2" / html.name), arch=arch
    )


def test_real_cmmd_clip_is_the_file_open_clip_fetches(tmp_path, monkeypatch, hub) -> None:
    """The ``openai`` tag of ViT-L-14-336: the spec names the file open_clip's own
    download_pretrained takes from the Hugging Face cache (safetensors first, else .bin),
    and its preprocessing is the published-size model's (built on the meta device)."""
    import open_clip
    from open_clip.pretrained import download_pretrained

    from t2i_bench.backbones._files import hub_cache
    from t2i_bench.backbones.cmmd_clip import ARCH, TAG, CmmdClipBackbone

    repo = "timm/vit_large_patch14_clip_336.openai"
    cfg = open_clip.get_pretrained_cfg(ARCH, TAG)
    assert cfg["hf_hub"].rstrip("/") == repo
    for name in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors"):
        hub.put(repo, name, name.encode())
        spec = describe_without_loading(monkeypatch, "clip_vit_l14_336", "real")
        assert spec.weight_files == (download_pretrained(cfg, cache_dir=hub_cache()),)
        assert Path(spec.weight_files[0]).name == name
    assert spec.architecture == f"open_clip {ARCH} (QuickGELU)" and spec.weights == f"{ARCH}/{TAG}"
    assert spec.settings["open_clip_model_cfg"] == open_clip.get_model_config(ARCH)
    model = open_clip.create_model(ARCH, force_quick_gelu=True, device="meta")
    tokenizer = open_clip.get_tokenizer(ARCH)
    backbone = CmmdClipBackbone(model, tokenizer, "real", "x", device="meta")
    assert backbone.preprocessing == spec.preprocessing and "336x336" in spec.preprocessing


def test_real_cmmd_clip_folder_hub_id_and_checkpoint(tmp_path, monkeypatch, hub) -> None:
    import open_clip

    from t2i_bench.backbones.clip import TINY_CLIP_CFG, build_tiny_clip

    folder = _clip_hub_dir(tmp_path / "clip")
    local, real = assert_spec_is_the_loaded_model(
        monkeypatch, "clip_vit_l14_336", "real", weights=str(folder)
    )
    assert [Path(p).name for p in local.weight_files] == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    assert local.preprocessing == describe_backbone("clip_vit_l14_336", "tiny").preprocessing
    tiny = load_backbone("clip_vit_l14_336", "tiny")
    np.testing.assert_allclose(
        real.embed_images(_images()), tiny.embed_images(_images()), atol=1e-6
    )
    hub.put_folder("org/tiny-clip", folder)
    cached, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "clip_vit_l14_336", "real", weights="hf-hub:org/tiny-clip"
    )
    assert cached.identity == local.identity and cached.weights == "hf-hub:org/tiny-clip"
    # a training checkpoint of an architecture, through the environment variable
    (tmp_path / "t2i-tiny-clip.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path / "t2i-tiny-clip.json")
    ckpt = tmp_path / "epoch_1.pt"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in build_tiny_clip().state_dict().items()}}, ckpt
    )
    monkeypatch.setenv("T2I_BENCH_CLIP_VIT_L14_336", str(ckpt))
    spec, real = assert_spec_is_the_loaded_model(
        monkeypatch, "clip_vit_l14_336", "real", arch="t2i-tiny-clip"
    )
    assert spec.weight_files == (str(ckpt),) and spec.architecture == "open_clip t2i-tiny-clip"
    np.testing.assert_allclose(
        real.embed_images(_images()), tiny.embed_images(_images()), atol=1e-6
    )


def test_human_aligned_roles_take_options_from_the_config(concept_dir, monkeypatch) -> None:
    """``backbones: {dreamsim: {weights: ...}}`` (paths relative to the config) reaches the
    describer, as for the other roles; a plain config keeps the defaults."""
    from conftest import write_config

    from t2i_bench.config import load_config
    from t2i_bench.metrics.embed import Backbones

    cache = _copy_files(FIXTURES / "dreamsim" / "cache", concept_dir / "ds", DREAMSIM_FILES)
    hps = FIXTURES / "hpsv2" / "HPS_v2.1_compressed.pt"
    extra = (
        "backbones:\n"
        "  profile: real\n"
        "  dreamsim: {weights: ds}\n"
        f"  hpsv2: {{weights: {hps}, arch: {_hps_arch()}}}\n"
        "  clip_vit_l14_336: {weights: hf-hub:org/none, arch: ViT-B-32}\n"
    )
    config = load_config(write_config(concept_dir, extra))
    assert config.backbones.role("dreamsim") == ("dreamsim", {"weights": str(cache.resolve())})
    assert config.backbones.role("clip_vit_l14_336") == (
        "clip_vit_l14_336",
        {"weights": "hf-hub:org/none", "arch": "ViT-B-32"},
    )
    roles = Backbones(config.backbones)
    assert Path(roles.spec("dreamsim").weight_files[0]).is_relative_to(cache.resolve())
    assert roles.spec("hpsv2").weight_files == (str(hps),)
    with pytest.raises(BenchError, match="models--org--none"):
        roles.spec("clip_vit_l14_336")
    plain = load_config(write_config(concept_dir))
    for role in ("dreamsim", "hpsv2", "clip_vit_l14_336"):
        assert plain.backbones.role(role) == (role, {})


# ------------------------------------------------------------------ identity by contents


def test_identity_is_the_weights_contents_not_their_path(tmp_path) -> None:
    from t2i_bench.backbones.vgg import TINY_CFG, build_tiny_vgg

    a = tmp_path / "a" / "vgg.pth"
    a.parent.mkdir()
    torch.save({f"features.{k}": v for k, v in build_tiny_vgg().state_dict().items()}, a)
    b = tmp_path / "b" / "renamed.pth"
    b.parent.mkdir()
    shutil.copy(a, b)
    spec_a = describe_backbone("vgg19_gram", "real", weights=str(a), cfg=TINY_CFG, size=64)
    spec_b = describe_backbone("vgg19_gram", "real", weights=str(b), cfg=TINY_CFG, size=64)
    assert spec_a.identity == spec_b.identity
    sd = torch.load(b, weights_only=True)
    sd["features.0.bias"] = sd["features.0.bias"] + 1e-3
    torch.save(sd, b)
    spec_changed = describe_backbone("vgg19_gram", "real", weights=str(b), cfg=TINY_CFG, size=64)
    assert spec_changed.identity != spec_a.identity
    # and the preprocessing is part of it
    other_size = describe_backbone("vgg19_gram", "real", weights=str(a), cfg=TINY_CFG, size=96)
    assert other_size.identity != spec_a.identity


# ----------------------------------------------------------- missing and broken weights

MISSING = {
    "clip_vit_l14": (
        "models--laion--CLIP-ViT-L-14-DataComp.XL-s13B-b90K",
        "open_clip_pytorch_model.bin",
    ),
    "clip_vit_b32": ("models--timm--vit_base_patch32_clip_224.openai", "open_clip_model"),
    "dinov2_vitl14": ("models--facebook--dinov2-large", "config.json model.safetensors"),
    "dino_vits16": ("models--facebook--dino-vits16", "config.json pytorch_model.bin"),
    "inception_v3_fid": ("hub/checkpoints", "pt_inception-2015-12-05-6726825d.pth"),
    "lpips_alex": ("hub/checkpoints", "alexnet-owt-7be5be79.pth"),
    "vgg19_gram": ("hub/checkpoints", "vgg19-dcbb9e9d.pth"),
    "pickscore": ("models--yuvalkirstain--PickScore_v1", "config.json model.safetensors"),
    "image_reward": ("models--THUDM--ImageReward", "ImageReward.pt med_config.json"),
    "dreamsim": ("dreamsim-cache/", "clip_vitb16_pretrain.pth.tar"),
    "hpsv2": ("models--xswu--HPSv2", "HPS_v2.1_compressed.pt"),
    "clip_vit_l14_336": (
        "models--timm--vit_large_patch14_clip_336.openai",
        "open_clip_model.safetensors",
    ),
}


@pytest.mark.parametrize("name", BUILT_IN)
def test_missing_real_weights_are_one_line_naming_file_and_place(name, monkeypatch) -> None:
    place, files = MISSING[name]
    with pytest.raises(BenchError) as err:
        describe_without_loading(monkeypatch, name, "real")
    message = str(err.value)
    assert "\n" not in message
    assert place in message and files in message
    assert "backbones." in message and "T2I_BENCH_" in message  # the config key / env var


def test_a_given_path_that_does_not_exist_names_it(tmp_path, monkeypatch) -> None:
    missing = tmp_path / "nope.pth"
    names = ("inception_v3_fid", "vgg19_gram", "lpips_alex", "image_reward", "hpsv2", "dreamsim")
    for name in (*names, "clip_vit_l14_336"):
        with pytest.raises(BenchError, match=str(missing)):
            describe_without_loading(monkeypatch, name, "real", weights=str(missing))
    with pytest.raises(BenchError, match=r"no config.json"):
        describe_without_loading(monkeypatch, "dino_vits16", "real", weights=str(tmp_path))


def test_unknown_option_is_one_line(monkeypatch) -> None:
    with pytest.raises(BenchError, match="backbone clip_vit_l14 has no option 'tokenizer'"):
        describe_backbone("clip_vit_l14", "tiny", tokenizer="x")
    with pytest.raises(BenchError, match="it takes: weights, tokenizer"):
        load_backbone("image_reward", "tiny", processor="x")
    with pytest.raises(
        BenchError, match="backbone dreamsim has no option 'arch'; it takes: weights$"
    ):
        describe_backbone("dreamsim", "real", arch="ViT-B-16")
    for name in ("hpsv2", "clip_vit_l14_336"):  # arch picks a real architecture, never a tiny
        with pytest.raises(BenchError, match="'arch' applies to 'real' only"):
            describe_backbone(name, "tiny", arch="ViT-B-32")
        with pytest.raises(BenchError, match=f"backbone {name} has no option 'processor'"):
            load_backbone(name, "real", processor="x")


def test_broken_image_reward_checkpoint_is_one_line(tmp_path, monkeypatch) -> None:
    folder = _image_reward_dir(tmp_path / "ir")
    (folder / "ImageReward.pt").write_bytes(b"<html>rate limited</html>")
    for call in (describe_without_loading, None):
        with pytest.raises(BenchError) as err:
            if call is None:
                load_backbone("image_reward", "real", weights=str(folder))
            else:
                call(monkeypatch, "image_reward", "real", weights=str(folder))
        message = str(err.value)
        assert "\n" not in message and str(folder / "ImageReward.pt") in message
        assert "cannot read ImageReward.pt" in message and "huggingface.co/THUDM" in message
    # a pickle that needs arbitrary code is refused (weights_only), as one line
    torch.save({"blip.visual_encoder.pos_embed": Path("x")}, folder / "ImageReward.pt")
    with pytest.raises(BenchError, match="cannot read ImageReward.pt"):
        load_backbone("image_reward", "real", weights=str(folder))


def test_inception_path_is_never_unpickled_with_weights_only_false(tmp_path, monkeypatch) -> None:
    from t2i_bench.backbones.inception import tiny_inception_state_dict

    path = tmp_path / "my-inception.pth"
    torch.save(tiny_inception_state_dict(), path)
    seen: list[object] = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    spec, _ = assert_spec_is_the_loaded_model(
        monkeypatch, "inception_v3_fid", "real", weights=str(path)
    )
    assert seen and all(w is True for w in seen)
    assert spec.weights.startswith("file:my-inception.pth:")
    # a file that needs arbitrary code to unpickle is refused in one line
    torch.save({"Conv2d_1a_3x3.conv.weight": Path("x")}, path)
    with pytest.raises(BenchError, match="cannot load the FID Inception weights") as err:
        load_backbone("inception_v3_fid", "real", weights=str(path))
    assert "\n" not in str(err.value)

"""Backbones: tiny builders are deterministic, real loaders read real-format files offline,
and scores through our backbones equal direct library computations."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
from hubcache import HubCache
from PIL import Image
from safetensors.torch import save_file

from t2i_bench.backbones.base import available_backbones, load_backbone
from t2i_bench.backbones.clip import TINY_CLIP_CFG, build_tiny_clip, make_clip
from t2i_bench.errors import BenchError
from t2i_bench.metrics.functional import clip_score, mean_pairwise_cosine


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    # an empty hub cache and torch hub folder of this test: nothing published is present
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture()
def hub(tmp_path) -> HubCache:
    """The (empty) Hugging Face cache the backbones resolve published files in."""
    return HubCache(tmp_path / "hf-cache")


def _images(n: int, seed: int = 0, same_size: bool = False) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(72, 96)] if same_size else [(72, 96), (64, 64), (100, 80)]
    return [
        Image.fromarray(rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8))
        for i in range(n)
    ]


# ---------------------------------------------------------------------------------- CLIP


def test_clip_registered() -> None:
    assert {"clip_vit_b32", "clip_vit_l14"} <= set(available_backbones())


def test_tiny_clip_is_deterministic_and_rng_neutral() -> None:
    torch.manual_seed(1)
    a = build_tiny_clip().state_dict()
    after_a = torch.rand(1)
    torch.manual_seed(1)
    b = build_tiny_clip().state_dict()
    after_b = torch.rand(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(after_a, after_b)  # the builder does not consume the caller's RNG
    e1 = load_backbone("clip_vit_b32", "tiny").embed_images(_images(3))
    e2 = load_backbone("clip_vit_l14", "tiny").embed_images(_images(3))
    np.testing.assert_array_equal(e1, e2)
    assert e1.dtype == np.float32 and e1.shape == (3, TINY_CLIP_CFG["embed_dim"])


def test_clip_batches_and_counts_forwards() -> None:
    ims = _images(20)
    outs = []
    for bs in (1, 7, 32):
        bb = load_backbone("clip_vit_b32", "tiny", batch_size=bs)
        outs.append(bb.embed_images(ims))
        assert bb.forward_calls == -(-20 // bs)
        t = bb.embed_texts(["a dog"] * 9)
        assert t.shape == (9, 64) and bb.text_forward_calls == -(-9 // bs)
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], atol=1e-5, rtol=0)


def test_clip_preprocessing_is_described() -> None:
    bb = load_backbone("clip_vit_b32", "tiny")
    assert "resize shortest side to 64 (bicubic)" in bb.preprocessing
    assert "center crop 64" in bb.preprocessing
    assert "0.48145466" in bb.preprocessing and "0.26862954" in bb.preprocessing
    assert bb.identity.startswith("clip_vit_b32|tiny|")


def _save_hub_layout(tmp_path) -> str:
    """The layout of an open_clip hub repo: open_clip_config.json + open_clip_model.safetensors."""
    d = tmp_path / "hub_clip"
    d.mkdir()
    cfg = {
        "model_cfg": TINY_CLIP_CFG,
        "preprocess_cfg": {
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (d / "open_clip_config.json").write_text(json.dumps(cfg))
    sd = {k: v.contiguous() for k, v in build_tiny_clip().state_dict().items()}
    save_file(sd, str(d / "open_clip_model.safetensors"))
    return str(d)


def test_clip_real_loader_reads_hub_layout_dir(tmp_path) -> None:
    d = _save_hub_layout(tmp_path)
    real = make_clip("clip_vit_l14", "real", weights=d)
    tiny = make_clip("clip_vit_l14", "tiny")
    assert real.profile == "real" and real.weights.startswith("dir:hub_clip:")
    assert real.preprocessing == tiny.preprocessing
    ims = _images(5)
    np.testing.assert_allclose(real.embed_images(ims), tiny.embed_images(ims), atol=1e-6)
    txt = ["a photo of a cat", "olis stuffed toy"]
    np.testing.assert_allclose(real.embed_texts(txt), tiny.embed_texts(txt), atol=1e-6)


def test_clip_real_loader_reads_checkpoint_file_from_env(tmp_path, monkeypatch) -> None:
    # open_clip's training checkpoint format: {"state_dict": {"module.<key>": tensor}}.
    (tmp_path / "t2i-tiny-clip.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path / "t2i-tiny-clip.json")
    sd = {f"module.{k}": v for k, v in build_tiny_clip().state_dict().items()}
    ckpt = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": sd}, ckpt)
    monkeypatch.setenv("T2I_BENCH_CLIP_VIT_B32", str(ckpt))
    real = load_backbone("clip_vit_b32", "real", arch="t2i-tiny-clip")
    assert real.weights == f"file:epoch_1.pt:{ckpt.stat().st_size}"
    ims = _images(4)
    tiny = load_backbone("clip_vit_b32", "tiny")
    np.testing.assert_allclose(real.embed_images(ims), tiny.embed_images(ims), atol=1e-6)


def test_clip_real_without_weights_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("T2I_BENCH_CLIP_VIT_B32", raising=False)
    with pytest.raises(BenchError) as err:
        load_backbone("clip_vit_b32", "real")
    message = str(err.value)
    assert "\n" not in message
    assert "open_clip_model.safetensors of https://huggingface.co/timm/vit_base_patch32" in message
    assert "models--timm--vit_base_patch32_clip_224.openai" in message
    assert "backbones.clip.weights" in message and "T2I_BENCH_CLIP_VIT_B32" in message
    with pytest.raises(BenchError, match="unknown profile"):
        load_backbone("clip_vit_b32", "huge")


def test_clip_scores_match_direct_open_clip(tmp_path) -> None:
    """CLIP-I and CLIP-T via our backbone == open_clip's own model + transform + tokenizer."""
    d = _save_hub_layout(tmp_path)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{d}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{d}")
    model.eval()
    gen, ref = _images(6, seed=1), _images(4, seed=2)
    prompts = [f"a photo of a thing number {i}" for i in range(6)]
    with torch.no_grad():
        g = model.encode_image(torch.stack([preprocess(i) for i in gen]), normalize=True)
        r = model.encode_image(torch.stack([preprocess(i) for i in ref]), normalize=True)
        t = model.encode_text(tokenizer(prompts), normalize=True)
    direct_clip_i = (g @ r.T).mean().item()
    direct_clip_t = (g * t).sum(-1).numpy()

    bb = load_backbone("clip_vit_b32", "tiny", batch_size=4)
    ge, re_, te = bb.embed_images(gen), bb.embed_images(ref), bb.embed_texts(prompts)
    ours_clip_i = mean_pairwise_cosine(ge, re_)
    ours_clip_t = clip_score(ge, te, "raw")
    assert abs(ours_clip_i - direct_clip_i) <= 1e-6
    np.testing.assert_allclose(ours_clip_t, direct_clip_t, atol=1e-6)


# ---------------------------------------------------------------------------- all tiny


TINY_NAMES = [
    "clip_vit_b32",
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
    "clip_vit_l14_openai",
    "clip_demo",
]


@pytest.mark.parametrize("name", TINY_NAMES)
def test_tiny_builders_are_deterministic(name: str) -> None:
    ims = _images(3, seed=5, same_size=True)
    torch.manual_seed(0)
    a = load_backbone(name, "tiny")
    ea = a.embed_images(ims)
    torch.manual_seed(99)
    b = load_backbone(name, "tiny")
    np.testing.assert_array_equal(ea, b.embed_images(ims))
    assert ea.dtype == np.float32 and ea.shape == (3, a.feature_dim)
    assert float(ea.std(axis=0).max()) > 0  # images are told apart
    assert a.identity == b.identity and a.identity.startswith(f"{name}|tiny|")
    assert a.forward_calls == 1


# ---------------------------------------------------------------------------------- DINO


@pytest.mark.parametrize("name", ["dinov2_vitl14", "dino_vits16"])
def test_dino_real_loader_round_trip_and_direct_cls(name: str, tmp_path) -> None:
    from transformers import AutoImageProcessor, AutoModel

    from t2i_bench.backbones.dino import build_tiny_dino, make_dino, tiny_processor

    d = tmp_path / name
    build_tiny_dino(name).save_pretrained(d)
    tiny_processor(name).save_pretrained(d)
    assert (d / "config.json").exists() and (d / "model.safetensors").exists()
    real = make_dino(name, "real", weights=str(d), batch_size=2)
    tiny = make_dino(name, "tiny")
    assert real.profile == "real" and real.preprocessing == tiny.preprocessing
    ims = _images(5, seed=3)
    ours = real.embed_images(ims)
    np.testing.assert_allclose(ours, tiny.embed_images(ims), atol=1e-6)
    # direct transformers computation: processor -> model -> CLS of last_hidden_state
    model = AutoModel.from_pretrained(d).eval()
    processor = AutoImageProcessor.from_pretrained(d)
    with torch.no_grad():
        px = processor(images=ims, return_tensors="pt")["pixel_values"]
        direct = model(pixel_values=px).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(ours, direct, atol=1e-6)


def test_dino_real_missing_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("T2I_BENCH_DINO_VITS16", raising=False)
    with pytest.raises(
        BenchError,
        match="missing config.json pytorch_model.bin "
        "preprocessor_config.json of https://huggingface.co/facebook/dino-vits16",
    ):
        load_backbone("dino_vits16", "real")


# ----------------------------------------------------------------------------- Inception


def test_inception_real_loader_reads_pt_inception_file(tmp_path, monkeypatch) -> None:
    """The real loader finds ``pt_inception-2015-12-05-6726825d.pth`` in the torch hub cache
    and equals torch-fidelity's own extractor on the same file (299x299, as published)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from t2i_bench.backbones.inception import make_inception, tiny_inception_state_dict

    ckpt = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(tiny_inception_state_dict(), ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("T2I_BENCH_INCEPTION_WEIGHTS", raising=False)
    real = make_inception("real")
    assert real.weights == "pt_inception-2015-12-05" and "299x299" in real.preprocessing
    ims = _images(1, seed=4)
    ours = real.embed_images(ims)
    ref_net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(ckpt)).eval()
    x = torch.from_numpy(np.asarray(ims[0])).permute(2, 0, 1)[None]
    with torch.no_grad():
        direct = ref_net(x)[0].numpy()
    np.testing.assert_allclose(ours, direct, atol=1e-6)
    assert ours.shape == (1, 2048) and real.forward_calls == 1
    monkeypatch.setenv("T2I_BENCH_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(BenchError, match="not found"):
        make_inception("real")


def test_tiny_inception_features_are_not_degenerate_and_grouped_by_size() -> None:
    bb = load_backbone("inception_v3_fid", "tiny", batch_size=16)
    ims = _images(4, seed=9)  # three image sizes -> three network forwards
    x = bb.embed_images(ims)
    assert bb.forward_calls == 3
    # a default random init gives std ~1e-9; the Kaiming re-init keeps features apart
    assert float(x.std(axis=0).mean()) > 1e-4
    assert float(np.linalg.norm(x[:2].mean(0) - x[2:].mean(0))) > 1e-3
    one_by_one = np.concatenate([bb.embed_images([im]) for im in ims])
    np.testing.assert_allclose(x, one_by_one, atol=1e-5)


# ----------------------------------------------------------------------------- VGG / LPIPS


def test_vgg_real_loader_reads_torchvision_checkpoint(tmp_path) -> None:
    from t2i_bench.backbones.vgg import TINY_CFG, build_tiny_vgg, make_vgg

    sd = {f"features.{k}": v for k, v in build_tiny_vgg().state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # real files carry a classifier: ignored
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(sd, path)
    real = make_vgg("real", weights=str(path), cfg=TINY_CFG, size=64)
    assert real.weights == "vgg19-imagenet1k-v1"
    ims = _images(3, seed=6)
    np.testing.assert_allclose(
        real.embed_images(ims), load_backbone("vgg19_gram", "tiny").embed_images(ims), atol=1e-7
    )
    with pytest.raises(BenchError, match="VGG-19"):
        make_vgg("real", weights=str(tmp_path / "nope.pth"))


def test_vgg_gram_embedding_distance_is_style_loss() -> None:
    from t2i_bench.metrics.functional import gram_style_loss, sq_distance_pairs

    bb = load_backbone("vgg19_gram", "tiny")
    a, b = _images(3, seed=10), _images(3, seed=11)
    acts_a, acts_b = bb.style_activations(a), bb.style_activations(b)
    assert [x.shape[1] for x in acts_a] == [8, 16, 32, 64, 64]
    loss = gram_style_loss(acts_a, acts_b)
    np.testing.assert_allclose(
        sq_distance_pairs(bb.embed_images(a), bb.embed_images(b)), loss, rtol=1e-4
    )


# ----------------------------------------------------------------------------- PickScore


def test_pickscore_real_loader_and_direct_transformers(tmp_path) -> None:
    """Model and processor saved with save_pretrained, read by the real loader offline;
    scores equal CLIPModel's own logits_per_image (logit_scale.exp() * cosine) within 1e-4."""
    from transformers import CLIPModel, CLIPProcessor

    from t2i_bench.backbones.pickscore import build_tiny_pickscore, make_pickscore, tiny_processor
    from t2i_bench.metrics.functional import pickscore

    d = tmp_path / "pickscore"
    build_tiny_pickscore().save_pretrained(d)
    tiny_processor().save_pretrained(d)
    real = make_pickscore("real", weights=str(d), batch_size=2)
    tiny = make_pickscore("tiny")
    assert real.preprocessing == tiny.preprocessing and real.logit_scale == tiny.logit_scale
    ims = _images(4, seed=12)
    prompts = ["a photo of a dog", "olis stuffed toy in a chef's outfit, cooking", "x", "a b c"]
    ours = pickscore(real.embed_images(ims), real.embed_texts(prompts), real.logit_scale)
    np.testing.assert_allclose(real.embed_images(ims), tiny.embed_images(ims), atol=1e-6)
    model, proc = CLIPModel.from_pretrained(d).eval(), CLIPProcessor.from_pretrained(d)
    with torch.no_grad():
        for i, (im, p) in enumerate(zip(ims, prompts, strict=True)):
            inputs = proc(text=[p], images=[im], padding=True, return_tensors="pt")
            direct = float(model(**inputs).logits_per_image[0, 0])
            assert ours[i] == pytest.approx(direct, abs=1e-4)
    assert real.text_forward_calls == 2 and real.forward_calls == 4


def test_pickscore_tokenizer_matches_open_clip_bpe() -> None:
    from open_clip.tokenizer import SimpleTokenizer

    from t2i_bench.backbones.pickscore import clip_bpe_tokenizer

    text = "A photo of an olis stuffed-toy, cooking!!  in the style of Watercolor 3.5"
    ids = clip_bpe_tokenizer()(text)["input_ids"]
    assert ids == [49406, *SimpleTokenizer().encode(text), 49407]


# --------------------------------------------------------------------------- ImageReward


def _image_reward_fixture():
    import importlib.util
    from pathlib import Path

    d = Path(__file__).parent / "fixtures" / "image_reward"
    spec = importlib.util.spec_from_file_location("ir_fixture", d / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return d, module, json.loads((d / "expected.json").read_text())


def test_image_reward_matches_the_image_reward_package() -> None:
    """A checkpoint saved from the image-reward 1.5 package's own ImageReward model (small BLIP,
    random O(1) weights; tests/fixtures/image_reward/make_fixture.py) loads through the real
    loader and reproduces the package's score(prompt, image) within 1e-4."""
    from t2i_bench.backbones.image_reward import make_image_reward

    d, fixture, expected = _image_reward_fixture()
    bb = make_image_reward("real", weights=str(d), batch_size=4)
    ims = fixture.images()
    cases = expected["cases"]
    scores = bb.score([ims[c["image"]] for c in cases], [c["prompt"] for c in cases])
    np.testing.assert_allclose(scores, [c["score"] for c in cases], atol=1e-4, rtol=0)
    assert float(np.ptp(scores)) > 0.1  # images and prompts both matter
    # one image embedding, reused across prompts
    emb = bb.embed_images(ims[:1])
    s = bb.score_embeddings(np.repeat(emb, 3, axis=0), fixture.PROMPTS)
    np.testing.assert_allclose(s, [c["score"] for c in cases[:3]], atol=1e-4)


def test_image_reward_state_dict_round_trip(tmp_path) -> None:
    from t2i_bench.backbones.image_reward import (
        build_tiny_image_reward,
        make_image_reward,
        tiny_med_config,
        to_image_reward_state_dict,
    )

    model, tok = build_tiny_image_reward()
    torch.save(to_image_reward_state_dict(model), tmp_path / "ImageReward.pt")
    (tmp_path / "med_config.json").write_text(json.dumps(tiny_med_config(tok)))
    (tmp_path / "vocab.txt").write_text(
        "\n".join(t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])[:-2])
    )
    real = make_image_reward("real", weights=str(tmp_path))
    tiny = make_image_reward("tiny")
    ims, prompts = _images(3, seed=13), ["a dog", "the cat, cooking", "zzz"]
    np.testing.assert_allclose(real.score(ims, prompts), tiny.score(ims, prompts), atol=1e-6)
    with pytest.raises(BenchError, match="not found"):
        make_image_reward("real", weights=str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("name", "arch", "quick_gelu"),
    [("clip_vit_b32", "ViT-B-32", True), ("clip_vit_l14", "ViT-L-14", False)],
)
def test_clip_real_published_arguments(
    name, arch, quick_gelu, tmp_path, monkeypatch, hub: HubCache
) -> None:
    """The real loader asks open_clip for the published architecture, the tag's QuickGELU
    setting and preprocessing, and by default reads the tag's file from the hub cache
    (building the full-size models is left out: too slow here)."""
    import t2i_bench.backbones.clip as clip_mod

    calls = []

    def fake_create_model(model_name, **kwargs):
        calls.append((model_name, kwargs))
        return build_tiny_clip()

    monkeypatch.setattr(clip_mod.open_clip, "create_model", fake_create_model)
    monkeypatch.delenv(clip_mod.SPECS[name].env_var, raising=False)
    ckpt = tmp_path / "weights.bin"
    ckpt.write_bytes(b"x")
    bb = make_clip(name, "real", weights=str(ckpt))
    model_name, kwargs = calls[0]
    assert model_name == arch and kwargs["pretrained"] == str(ckpt)
    assert kwargs["force_quick_gelu"] is quick_gelu and kwargs["require_pretrained"] is True
    assert kwargs["force_preprocess_cfg"]["interpolation"] == "bicubic"
    assert tuple(kwargs["force_preprocess_cfg"]["mean"]) == open_clip.OPENAI_DATASET_MEAN
    assert bb.weights == "file:weights.bin:1"
    calls.clear()
    # default: the published tag's file, resolved through the hub cache (as open_clip does)
    repo = os.path.split(open_clip.get_pretrained_cfg(arch, clip_mod.SPECS[name].tag)["hf_hub"])[0]
    cached = hub.put(repo, "open_clip_model.safetensors", b"weights")
    bb = make_clip(name, "real")
    assert calls[0][0] == arch and calls[0][1]["pretrained"] == str(cached)
    assert calls[0][1]["force_quick_gelu"] is quick_gelu
    assert bb.weights == f"{arch}/{clip_mod.SPECS[name].tag}"

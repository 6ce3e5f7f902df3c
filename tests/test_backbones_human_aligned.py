"""The human-aligned backbones (DreamSim, HPS v2.1, CLIP ViT-L/14@336 for CMMD, the LAION
aesthetic head) against their published packages, through the real loaders and files in the
published layouts (fixtures built by each package's own code in a throw-away environment)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from t2i_bench.backbones.base import load_backbone
from t2i_bench.errors import BenchError

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture(name: str):
    d = FIXTURES / name
    spec = importlib.util.spec_from_file_location(f"{name}_fixture", d / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return d, module, json.loads((d / "expected.json").read_text())


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(72, 96), (64, 64), (100, 80)]
    return [
        Image.fromarray(rng.integers(0, 256, (*sizes[i % 3], 3), dtype=np.uint8)) for i in range(n)
    ]


# ------------------------------------------------------------------------------ DreamSim


def test_dreamsim_matches_the_dreamsim_package() -> None:
    """Towers, LoRA adapter and DINO hub file written in the dreamsim 0.2.1 cache layout by the
    package's own classes (tests/fixtures/dreamsim/make_fixture.py); our real loader reads them,
    merges the LoRA, and reproduces the package's embeddings and distances within 1e-5."""
    from t2i_bench.backbones.dreamsim import make_dreamsim
    from t2i_bench.metrics.functional import cosine_matrix

    d, fixture, expected = _fixture("dreamsim")
    bb = make_dreamsim("real", weights=str(d / "cache"), batch_size=3)
    ims = fixture.images()
    emb = bb.embed_images(ims)
    np.testing.assert_allclose(emb, np.array(expected["embeddings"]), atol=1e-5, rtol=0)
    dist = 1.0 - cosine_matrix(emb, emb)
    ours = [dist[a, b] for a, b in expected["pairs"]]
    np.testing.assert_allclose(ours, expected["distances"], atol=1e-5, rtol=0)
    assert float(np.ptp(expected["distances"][:-1])) > 0.05  # the images are told apart
    assert bb.forward_calls == 2 and bb.feature_dim == 64  # 32 + 16 + 16
    assert "224x224" in bb.preprocessing


def test_dreamsim_lora_is_applied(tmp_path, monkeypatch) -> None:
    """Without the adapter the embeddings differ (the fixture's LoRA weights matter); a missing
    adapter or tower file is one clear error naming it."""
    import shutil

    import t2i_bench.backbones.dreamsim as ds

    d, fixture, _ = _fixture("dreamsim")
    root = tmp_path / "cache"
    shutil.copytree(d / "cache", root)
    ims = fixture.images()
    with_lora = ds.DreamSimBackbone(ds.load_real_dreamsim(root), "real", "x").embed_images(ims)
    with monkeypatch.context() as m:
        m.setattr(ds, "merge_lora", lambda model, lora_dir: model.eval())
        plain = ds.DreamSimBackbone(ds.load_real_dreamsim(root), "real", "x").embed_images(ims)
    assert float(np.abs(with_lora - plain).max()) > 1e-2
    (root / "ensemble_lora" / "adapter_model.safetensors").unlink()
    with pytest.raises(BenchError, match="LoRA"):
        ds.load_real_dreamsim(root)
    (root / "clip_vitb16_pretrain.pth.tar").unlink()
    with pytest.raises(BenchError, match="clip_vitb16_pretrain.pth.tar"):
        ds.make_dreamsim("real", weights=str(root))


# ---------------------------------------------------------------------------------- HPS v2


def test_hpsv2_matches_the_hpsv2_package(tmp_path) -> None:
    """A small CLIP built and scored by the hpsv2 1.2.0 package's own code, saved as
    HPS_v2.1_compressed.pt (tests/fixtures/hpsv2/make_fixture.py): our real loader reads it and
    reproduces hpsv2.img_score.score(image, prompt) for 3 images x 3 prompts within 1e-5."""
    import open_clip

    from t2i_bench.backbones.hpsv2 import make_hpsv2
    from t2i_bench.metrics.functional import clip_score

    d, fixture, expected = _fixture("hpsv2")
    cfg = tmp_path / f"{expected['arch']}.json"
    cfg.write_text(json.dumps(expected["config"]))
    open_clip.add_model_config(cfg)
    bb = make_hpsv2("real", weights=str(d / "HPS_v2.1_compressed.pt"), arch=expected["arch"])
    assert bb.weights.startswith("file:HPS_v2.1_compressed.pt:")
    ims = fixture.images()
    cases = expected["cases"]
    img = bb.embed_images(ims)
    txt = bb.embed_texts(fixture.PROMPTS)
    index = {p: i for i, p in enumerate(fixture.PROMPTS)}
    ours = [
        clip_score(img[c["image"] : c["image"] + 1], txt[index[c["prompt"]]], "raw")[0]
        for c in cases
    ]
    np.testing.assert_allclose(ours, [c["score"] for c in cases], atol=1e-5, rtol=0)
    assert float(np.ptp([c["score"] for c in cases])) > 0.05  # images and prompts matter


def test_hpsv2_transform_pads_the_longest_side() -> None:
    from t2i_bench.backbones.hpsv2 import ResizeLongestPad

    x = ResizeLongestPad(56)(Image.new("RGB", (112, 56), (255, 255, 255)))
    assert x.shape == (3, 56, 56)
    white = (1.0 - 0.48145466) / 0.26862954
    black = (0.0 - 0.48145466) / 0.26862954
    assert x[0, 28, 28].item() == pytest.approx(white, abs=1e-4)  # the image, centred
    assert x[0, 2, 28].item() == pytest.approx(black, abs=1e-6)  # zero padding above
    assert ResizeLongestPad(56)(Image.new("RGB", (56, 40))).shape == (3, 56, 56)


def test_hpsv2_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    from t2i_bench.backbones.hpsv2 import make_hpsv2

    with pytest.raises(BenchError, match="HPS v2 checkpoint not found"):
        make_hpsv2("real", weights=str(tmp_path / "nope.pt"))


# --------------------------------------------------------------------- aesthetic predictor


def test_aesthetic_head_matches_simple_aesthetics_predictor() -> None:
    """A head saved in the published .pth layout from simple-aesthetics-predictor 0.1.2's own
    AestheticsPredictorV2Linear (tests/fixtures/aesthetic/make_fixture.py): our head on the
    package's image embeddings, rescaled (the head normalises), gives its logits within 1e-5."""
    from t2i_bench.backbones.aesthetic import AestheticHead, load_aesthetic_mlp

    d, _, expected = _fixture("aesthetic")
    head = AestheticHead(load_aesthetic_mlp(d / "head.pth"), "real", "fixture")
    embeds = np.array(expected["tiny"]["embeds"])
    scales = np.random.default_rng(0).uniform(0.1, 30.0, size=(len(embeds), 1))
    np.testing.assert_allclose(
        head.apply(embeds * scales), expected["tiny"]["logits"], atol=1e-5, rtol=0
    )
    with pytest.raises(BenchError, match="expects"):
        head.apply(np.zeros((2, 5)))


def _published_aesthetic() -> Path | None:
    from t2i_bench.backbones.aesthetic import _default_path

    source = os.environ.get("T2I_BENCH_AESTHETIC")
    path = Path(source) if source else _default_path()
    return path if path.is_file() else None


@pytest.mark.skipif(_published_aesthetic() is None, reason="published aesthetic weights absent")
def test_aesthetic_head_with_the_published_weights() -> None:
    """With sac+logos+ava1-l14-linearMSE.pth present (T2I_BENCH_AESTHETIC or the torch hub
    cache), the real head reproduces the package's scores on seeded embeddings within 1e-5."""
    from t2i_bench.backbones.heads import load_head

    _, fixture, expected = _fixture("aesthetic")
    load_head.cache_clear()
    head = load_head("laion_aesthetic_v2", "real")
    assert head.weights == f"sha256:{expected['published']['sha256']}"
    ours = head.apply(fixture.embeddings_768())
    np.testing.assert_allclose(ours, expected["published"]["scores"], atol=1e-5, rtol=0)


def test_aesthetic_real_without_weights_is_a_clear_error(monkeypatch, tmp_path) -> None:
    from t2i_bench.backbones.heads import load_head

    monkeypatch.setenv("T2I_BENCH_AESTHETIC", str(tmp_path / "missing.pth"))
    load_head.cache_clear()
    with pytest.raises(BenchError, match="aesthetic predictor weights not found"):
        load_head("laion_aesthetic_v2", "real")
    load_head.cache_clear()


# ------------------------------------------------------------------ CLIP ViT-L/14 @ 336


def test_cmmd_clip_crops_the_square_then_resizes_and_matches_open_clip(tmp_path) -> None:
    """CMMD's preprocessing (centre square, bicubic resize, CLIP mean/std), then open_clip's
    own encode_image on the same weights, read through the real loader from a hub-layout dir."""
    import open_clip
    from safetensors.torch import save_file

    from t2i_bench.backbones.clip import TINY_CLIP_CFG, build_tiny_clip
    from t2i_bench.backbones.cmmd_clip import CLIP_MEAN, CLIP_STD, crop_square_resize

    d = tmp_path / "hub"
    d.mkdir()
    cfg = {"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {"mean": CLIP_MEAN, "std": CLIP_STD}}
    (d / "open_clip_config.json").write_text(json.dumps(cfg))
    sd = {k: v.contiguous() for k, v in build_tiny_clip().state_dict().items()}
    save_file(sd, str(d / "open_clip_model.safetensors"))
    real = load_backbone("clip_vit_l14_336", "real", weights=str(d))
    tiny = load_backbone("clip_vit_l14_336", "tiny")
    assert real.preprocessing == tiny.preprocessing and "center-crop" in real.preprocessing
    ims = _images(4, seed=8)
    ours = real.embed_images(ims)
    np.testing.assert_allclose(ours, tiny.embed_images(ims), atol=1e-6)
    model = open_clip.create_model(f"local-dir:{d}").eval()
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    with torch.no_grad():
        px = []
        for im in ims:  # the published recipe by hand: crop box, PIL bicubic, /255
            w, h = im.size
            s = min(w, h)
            sq = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            arr = np.asarray(sq.resize((64, 64), Image.BICUBIC), dtype=np.float32) / 255.0
            px.append((torch.from_numpy(arr).permute(2, 0, 1) - mean) / std)
        direct = model.encode_image(torch.stack(px)).numpy()
    np.testing.assert_allclose(ours, direct, atol=1e-5)
    assert crop_square_resize(Image.new("RGB", (90, 30)), 64).size == (64, 64)


def test_dreamsim_reads_a_bin_adapter(tmp_path) -> None:
    """Older PEFT (as in the published zip) saves adapter_model.bin: same embeddings."""
    import shutil

    from safetensors.torch import load_file

    from t2i_bench.backbones.dreamsim import make_dreamsim

    d, fixture, expected = _fixture("dreamsim")
    root = tmp_path / "cache"
    shutil.copytree(d / "cache", root)
    lora = root / "ensemble_lora"
    torch.save(load_file(lora / "adapter_model.safetensors"), lora / "adapter_model.bin")
    (lora / "adapter_model.safetensors").unlink()
    emb = make_dreamsim("real", weights=str(root)).embed_images(fixture.images())
    np.testing.assert_allclose(emb, np.array(expected["embeddings"]), atol=1e-5, rtol=0)

"""Device correctness without a GPU: every backbone runs on the ``meta`` device (any tensor left
on the CPU is an error there), and a device out-of-memory in an embedding batch is retried in
halves, then recorded as a failure for the images that do not fit, and the run carries on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers.masking_utils
from conftest import write_config
from PIL import Image
from typer.testing import CliRunner

from t2i_bench.backbones._torch import halving_on_oom, is_out_of_memory
from t2i_bench.backbones.base import load_backbone
from t2i_bench.executors import LocalExecutor

BACKBONES = [
    "clip_vit_b32",
    "clip_vit_l14",
    "dinov2_vitl14",
    "dino_vits16",
    "inception_v3_fid",
    "lpips_alex",
    "vgg19_gram",
    "pickscore",
    "image_reward",
]
TEXT_BACKBONES = {"clip_vit_b32", "clip_vit_l14", "pickscore"}


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture()
def meta_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers skips building an attention mask when every token is kept, a check that
    reads tensor values (impossible on ``meta``); always building it is equivalent."""
    for name in ("_ignore_causal_mask_sdpa", "_ignore_bidirectional_mask_sdpa"):
        monkeypatch.setattr(transformers.masking_utils, name, lambda *a, **k: False)


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_runs_on_the_meta_device(name: str, meta_masks) -> None:
    backbone = load_backbone(name, "tiny", "meta")
    out = backbone.forward_batch(_images(3))
    assert out.device.type == "meta" and tuple(out.shape) == (3, backbone.feature_dim)
    if name in TEXT_BACKBONES:
        text = backbone.forward_text_batch(["a photo of a dog", "olis toy, cooking"])
        assert text.device.type == "meta" and tuple(text.shape) == (2, backbone.feature_dim)
    if name == "image_reward":
        tokens = np.zeros((2, backbone.feature_dim), np.float32)  # cached CPU embeddings
        reward = backbone.forward_reward_batch(tokens, ["a dog", "a cat"])
        assert reward.device.type == "meta" and tuple(reward.shape) == (2,)


def test_the_meta_check_catches_an_input_left_on_the_cpu(monkeypatch, meta_masks) -> None:
    """The bug class it guards against: LPIPS once moved its net to the device and then ran it
    on a CPU tensor."""
    from t2i_bench.backbones.lpips_net import LPIPSBackbone

    backbone = load_backbone("lpips_alex", "tiny", "meta")
    monkeypatch.setattr(
        LPIPSBackbone, "_prepare_images", lambda self, ims: torch.zeros(len(ims), 3, 64, 64)
    )
    with pytest.raises((RuntimeError, NotImplementedError)):
        backbone.forward_batch(_images(2))


# ------------------------------------------------------------------------ out of memory


def _oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_halving_retries_down_to_single_items_then_reports_them() -> None:
    calls: list[int] = []

    def run(items):
        calls.append(len(items))
        if len(items) > 2 or "bad" in items:
            raise _oom()
        return np.array([[float(len(x))] for x in items])

    items = ["a", "bb", "bad", "ccc", "dddd"]
    parts = list(halving_on_oom(run, items))
    assert calls == [5, 2, 3, 1, 2]  # 5 -> halves 2 (fits) and 3 -> 1 ("bad", alone) and 2
    done = {i for lo, hi, r in parts if not isinstance(r, str) for i in range(lo, hi)}
    failed = [(lo, hi, r) for lo, hi, r in parts if isinstance(r, str)]
    assert done == {0, 1, 3, 4} and [(lo, hi) for lo, hi, _ in failed] == [(2, 3)]
    assert "out of memory" in failed[0][2] and "\n" not in failed[0][2]
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    with pytest.raises(ValueError):  # anything else is not retried
        list(halving_on_oom(lambda items: (_ for _ in ()).throw(ValueError("x")), items))


def test_local_executor_embeds_what_fits_and_reports_the_rest(tmp_path, monkeypatch) -> None:
    backbone = load_backbone("clip_vit_b32", "tiny")
    paths = {}
    for i, image in enumerate(_images(5)):
        paths[f"sha{i}"] = tmp_path / f"{i}.png"
        image.save(paths[f"sha{i}"])
    reference = backbone.embed_images([Image.open(paths[s]).convert("RGB") for s in sorted(paths)])
    original = backbone.embed_images
    too_big = Image.open(paths["sha3"]).convert("RGB").tobytes()

    def flaky(images):
        if len(images) > 2 or any(im.tobytes() == too_big for im in images):
            raise _oom()
        return original(images)

    monkeypatch.setattr(backbone, "embed_images", flaky)

    class Roles:
        def get(self, role):
            return backbone

    results = list(LocalExecutor().embed(Roles(), {"clip": paths}, batch_size=5))
    assert {role for role, _, _ in results} == {"clip"}
    features = {
        s: f
        for _, shas, r in results
        if not isinstance(r, str)
        for s, f in zip(shas, r, strict=True)
    }
    errors = {s: r for _, shas, r in results if isinstance(r, str) for s in shas}
    assert set(errors) == {"sha3"} and set(features) == {"sha0", "sha1", "sha2", "sha4"}
    for i, sha in enumerate(sorted(paths)):
        if sha in features:
            np.testing.assert_allclose(features[sha], reference[i], atol=1e-5)


def test_run_records_out_of_memory_images_and_carries_on(concept_dir: Path, monkeypatch) -> None:
    from t2i_bench import runner
    from t2i_bench.cli import app

    config = write_config(concept_dir)
    assert CliRunner().invoke(app, ["generate", str(config)]).exit_code == 0
    bench = runner.prepare(config)
    try:
        clip = bench.backbones.get("clip")
        original = clip.embed_images
        victim: list[bytes] = []

        def flaky(images):
            if not victim:
                victim.append(images[0].tobytes())
            if len(images) > 1 or images[0].tobytes() == victim[0]:
                raise _oom()
            return original(images)

        monkeypatch.setattr(clip, "embed_images", flaky)
        embedded = runner.embed(bench)
        failures = [f for f in bench.store.failures() if f[0] == "embed"]
        assert len(failures) == 1 and failures[0][1].startswith("clip/")
        assert "out of memory" in failures[0][2]
        stored = bench.store.embedded(bench.backbones.identity("clip"))
        assert len(stored) == embedded - 1 > 0
        # the next run embeds it (memory permitting) and the failure is gone
        monkeypatch.setattr(clip, "embed_images", original)
        assert runner.embed(bench) == 1
        assert not [f for f in bench.store.failures() if f[0] == "embed"]
    finally:
        bench.close()

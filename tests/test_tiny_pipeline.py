"""The tiny SD 1.x base model: real tokenizer, deterministic init, diffusers round trip."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from open_clip.tokenizer import SimpleTokenizer

from t2i_bench.generation.tiny import (
    CLIP_VOCAB_SIZE,
    TINY_IMAGE_SIZE,
    TINY_MAX_LENGTH,
    build_tiny_components,
    build_tiny_pipeline,
    build_tiny_tokenizer,
)

TEXTS = [
    "a photo of olis toy on a green background",
    "A Red circle, on a BLUE background!",
    "it's 3 dogs in the style of watercolor painting",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def _generate(pipe: StableDiffusionPipeline, prompt: str = "a red circle") -> np.ndarray:
    gen = torch.Generator().manual_seed(123)
    out = pipe(prompt, num_inference_steps=3, guidance_scale=3.0, generator=gen, output_type="np")
    return out.images[0]


def test_tokenizer_is_clip(tokenizer) -> None:
    assert len(tokenizer) == CLIP_VOCAB_SIZE == 49408
    assert tokenizer.model_max_length == TINY_MAX_LENGTH == 32
    ref = SimpleTokenizer()
    for text in TEXTS:
        ids = tokenizer(text).input_ids
        assert ids[0] == 49406 and ids[-1] == 49407  # <|startoftext|>, <|endoftext|>
        assert ids[1:-1] == ref.encode(text)
    assert tokenizer.decode(tokenizer(TEXTS[0]).input_ids, skip_special_tokens=True) == TEXTS[0]


def test_tokenizer_save_dir(tmp_path) -> None:
    tok = build_tiny_tokenizer(tmp_path)
    assert (tmp_path / "vocab.json").exists() and (tmp_path / "merges.txt").exists()
    assert len(tok) == 49408


def test_components_have_kohya_target_classes() -> None:
    comps = build_tiny_components(0)
    unet_classes = {type(m).__name__ for m in comps["unet"].modules()}
    assert {"Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D"} <= unet_classes
    te_classes = {type(m).__name__ for m in comps["text_encoder"].modules()}
    assert {"CLIPAttention", "CLIPMLP"} <= te_classes
    te_config = comps["text_encoder"].config
    assert te_config.vocab_size == 49408
    assert te_config.max_position_embeddings == TINY_MAX_LENGTH


def test_init_is_deterministic_per_seed() -> None:
    a, b, c = build_tiny_pipeline(0), build_tiny_pipeline(0), build_tiny_pipeline(1)
    for name in ("unet", "vae", "text_encoder"):
        sa, sb, sc = (getattr(p, name).state_dict() for p in (a, b, c))
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
        assert any(not torch.equal(sa[k], sc[k]) for k in sa), name


def test_generation_is_deterministic() -> None:
    pipe = build_tiny_pipeline(0)
    first, second = _generate(pipe), _generate(pipe)
    assert first.shape == (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3)
    assert np.array_equal(first, second)


def test_global_rng_untouched() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    build_tiny_components(0)
    assert torch.equal(torch.rand(3), expected)


def test_save_and_load_offline(tmp_path) -> None:
    pipe = build_tiny_pipeline(0)
    pipe.save_pretrained(tmp_path)
    loaded = StableDiffusionPipeline.from_pretrained(tmp_path)
    assert len(loaded.tokenizer) == 49408
    assert loaded.tokenizer.model_max_length == TINY_MAX_LENGTH
    assert loaded.safety_checker is None
    loaded.set_progress_bar_config(disable=True)
    assert np.array_equal(_generate(pipe), _generate(loaded))


def test_pixels_depend_on_batch_size_not_on_batch_mates_or_position() -> None:
    """What image keys rely on (plan.batch_keys): at one batch size an image's pixels do not
    depend on which other prompts and seeds share its batch, or where it sits in it."""
    from t2i_bench.config import SamplerConfig
    from t2i_bench.generation.render import render_batch

    pipe = build_tiny_pipeline(0)
    sampler = SamplerConfig(steps=3, guidance_scale=3.0, width=64, height=64)
    mine = ("olis toy on a beach", 0)

    def render(mates: list[tuple[str, int]], position: int) -> np.ndarray:
        batch = mates[:position] + [mine] + mates[position:]
        images = render_batch(pipe, [p for p, _ in batch], [s for _, s in batch], sampler)
        return np.asarray(images[position])

    some = [(f"prompt {i}", i) for i in range(5)]
    other = [(f"a different prompt, number {i}", 9 - i) for i in range(5)]
    reference = render(some, 0)
    for mates, position in ((other, 0), (some, 3), (other, 5)):
        assert np.array_equal(render(mates, position), reference)

"""Every checkpoint format users train, applied to one loaded tiny pipeline.

For each: the output changes; re-applying the same file gives the same image bitwise;
multiplier 0 and unloading restore the base output bitwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from adapter_files import write_full_finetune, write_lycoris_file, write_peft_lora
from safetensors.torch import save_file

from t2i_bench.config import SamplerConfig
from t2i_bench.errors import BenchError
from t2i_bench.generation.adapters import AdapterSwitcher
from t2i_bench.generation.formats import Format, detect_format
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.generation.render import render_batch

SAMPLER = SamplerConfig(steps=2, guidance_scale=3.0, width=64, height=64)
PROMPT = ["a photo of <zyx> toy"]
SD_FULL = Path(__file__).parent / "data" / "sd_full_preset.toml"

LYCORIS_CASES = [
    ("lora", {}),
    ("locon", {"preset": str(SD_FULL)}),  # LoCon incl. conv layers of the ResNet blocks
    ("loha", {"preset": str(SD_FULL)}),
    ("lokr", {"preset": str(SD_FULL)}),
    ("loha", {}),
    ("lokr", {"factor": 4}),
    ("lokr", {"full_matrix": True}),  # full-dimension mode: the second block not decomposed
    ("glora", {}),
    ("ia3", {}),
    ("full", {}),
    ("diag-oft", {}),
    ("boft", {}),
    ("lora", {"dora_wd": True}),  # DoRA weight decomposition
]


@pytest.fixture(scope="module")
def pipe():
    return load_base_pipeline("tiny", seed=0)


def _pixels(pipe) -> np.ndarray:
    return np.asarray(render_batch(pipe, PROMPT, [0], SAMPLER)[0])


def _round_trip(pipe, path: Path, changed_by: float = 1.0) -> None:
    base = _pixels(pipe)
    switcher = AdapterSwitcher(pipe)
    switcher.apply(path, 1.0)
    adapted = _pixels(pipe)
    assert np.abs(adapted.astype(int) - base.astype(int)).mean() > changed_by
    switcher.apply(path, 1.0)
    assert np.array_equal(_pixels(pipe), adapted)
    switcher.apply(path, 0.0)
    assert np.array_equal(_pixels(pipe), base)
    switcher.remove()
    assert np.array_equal(_pixels(pipe), base)


@pytest.mark.parametrize(("algo", "options"), LYCORIS_CASES, ids=lambda v: str(v))
def test_lycoris_algorithms(pipe, tmp_path: Path, algo: str, options: dict) -> None:
    path = write_lycoris_file(pipe, tmp_path / f"{algo}.safetensors", algo=algo, **options)
    assert detect_format(path) is Format.LYCORIS
    _round_trip(pipe, path)


def test_peft_diffusers_lora(pipe, tmp_path: Path) -> None:
    path = write_peft_lora(tmp_path)
    assert detect_format(path) is Format.DIFFUSERS_LORA
    _round_trip(pipe, path)


def test_textual_inversion(pipe, tmp_path: Path) -> None:
    path = tmp_path / "zyx.safetensors"
    save_file({"<zyx>": torch.randn(32, generator=torch.Generator().manual_seed(0))}, str(path))
    assert detect_format(path) is Format.TEXTUAL_INVERSION
    base, vocab = _pixels(pipe), len(pipe.tokenizer)
    switcher = AdapterSwitcher(pipe)
    switcher.apply(path)
    assert len(pipe.tokenizer) == vocab + 1
    adapted = _pixels(pipe)
    assert not np.array_equal(adapted, base)
    switcher.remove()
    assert len(pipe.tokenizer) == vocab and np.array_equal(_pixels(pipe), base)


def test_full_finetune_folder(pipe, tmp_path: Path) -> None:
    path = write_full_finetune(tmp_path / "dreambooth")
    assert detect_format(path) is Format.FULL_DIFFUSERS
    _round_trip(pipe, path)
    switcher = AdapterSwitcher(pipe)
    switcher.apply(path, 0.5)  # halfway between base and fine-tune weights
    half = _pixels(pipe)
    switcher.remove()
    assert not np.array_equal(half, _pixels(pipe))


def test_pickle_refused_unless_allowed(pipe, tmp_path: Path) -> None:
    source = write_lycoris_file(pipe, tmp_path / "a.safetensors", algo="lora")
    from safetensors.torch import load_file

    pickled = tmp_path / "a.pt"
    torch.save(load_file(str(source)), pickled)
    with pytest.raises(BenchError) as info:
        AdapterSwitcher(pipe).apply(pickled)
    assert str(info.value) == (
        f"{pickled}: pickle checkpoints can run code when loaded; convert to "
        ".safetensors or pass --allow-pickle"
    )
    switcher = AdapterSwitcher(pipe, allow_pickle=True)
    switcher.apply(pickled)
    switcher.remove()


def test_corrupt_and_foreign_files(pipe, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(BenchError, match=r"corrupt\.safetensors: not a readable safetensors file"):
        AdapterSwitcher(pipe).apply(corrupt)
    foreign = tmp_path / "sdxl.safetensors"
    save_file(
        {
            "lora_unet_input_blocks_4_1_proj_in.lora_down.weight": torch.zeros(4, 8),
            "lora_unet_input_blocks_4_1_proj_in.lora_up.weight": torch.zeros(8, 4),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4),
        },
        str(foreign),
    )
    with pytest.raises(BenchError) as info:
        AdapterSwitcher(pipe).apply(foreign)
    message = str(info.value)
    assert message.startswith(f"{foreign}: adapter does not fit the base model: ")
    assert "1 of 2 modules matched, 1 unmatched" in message and "\n" not in message


def test_loading_does_not_depend_on_lycoris_global_preset(pipe, tmp_path: Path) -> None:
    """A fresh process has lycoris-lora's default class-level preset, whose throwaway network
    in create_network_from_weights asserts on diffusers UNets; loading must not care."""
    import json

    import lycoris.kohya as lk
    from lycoris.config import PRESET
    from safetensors import safe_open
    from safetensors.torch import load_file

    written = write_lycoris_file(pipe, tmp_path / "w.safetensors", algo="loha", preset=str(SD_FULL))
    with safe_open(str(written), framework="pt") as handle:
        meta = dict(handle.metadata())
    meta["ss_network_args"] = json.dumps({"algo": "loha", "preset": "my-own-preset"})
    path = tmp_path / "a.safetensors"  # a preset name only its trainer knew: no rebuild possible
    save_file(load_file(str(written)), str(path), metadata=meta)
    lk.LycorisNetworkKohya.apply_preset(PRESET["full"])  # the state of a fresh process
    _round_trip(pipe, path)


def test_kohya_text_model_names_load(pipe, tmp_path: Path) -> None:
    """Real SD 1.x kohya files name text-encoder modules ``lora_te_text_model_encoder_…``
    (transformers 4); transformers 5's CLIPTextModel has no ``text_model`` level."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    ours = write_lycoris_file(pipe, tmp_path / "ours.safetensors", algo="lora", seed=9)
    with safe_open(str(ours), framework="pt") as handle:
        meta = dict(handle.metadata())
    renamed = {
        k.replace("lora_te_", "lora_te_text_model_", 1) if k.startswith("lora_te_") else k: v
        for k, v in load_file(str(ours)).items()
    }
    assert any(k.startswith("lora_te_text_model_encoder_") for k in renamed)
    kohya = tmp_path / "kohya.safetensors"
    save_file(renamed, str(kohya), metadata=meta)
    switcher = AdapterSwitcher(pipe)
    images = []
    for path in (ours, kohya):
        switcher.apply(path)
        images.append(_pixels(pipe))
    switcher.remove()
    assert np.array_equal(images[0], images[1])

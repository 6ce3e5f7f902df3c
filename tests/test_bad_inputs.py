"""Bad input a user can cause: one line naming the file and the problem, nothing computed is
lost, and the rest of the run completes. Each test backs a row of docs/reliability.md."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest
import torch
from adapter_files import write_lycoris_file
from conftest import write_config
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from t2i_bench import store as store_module
from t2i_bench.checkpoints import resolve_checkpoints, safe_name
from t2i_bench.cli import app
from t2i_bench.config import load_config
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.store import RunStore


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, " ".join(result.output.split())


@pytest.fixture(scope="module")
def lora(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lora")
    return write_lycoris_file(load_base_pipeline("tiny", 0), folder / "ok.safetensors", seed=4)


def test_truncated_reference_png(concept_dir: Path) -> None:
    image = concept_dir / "zyx" / "img_1.png"
    image.write_bytes(image.read_bytes()[:60])
    result, text = _invoke("run", str(write_config(concept_dir)))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{image}: unreadable reference image" in text


def test_empty_reference_dir(concept_dir: Path) -> None:
    for path in (concept_dir / "zyx").iterdir():
        path.unlink()
    result, text = _invoke("run", str(write_config(concept_dir)))
    assert result.exit_code == 2
    assert f"{concept_dir / 'zyx.yaml'}: images: no reference images in" in text


def test_unknown_metric_suggests_close_names(concept_dir: Path) -> None:
    config = write_config(concept_dir)
    config.write_text(config.read_text().replace("[clip_i, clip_t]", "[clip_i, cilp_t]"))
    result, text = _invoke("run", str(config))
    assert result.exit_code == 2
    assert "unknown metric 'cilp_t'; did you mean clip_t" in text


def test_nan_image_is_recorded_and_the_run_completes(concept_dir: Path, lora: Path) -> None:
    weights = load_file(str(lora))
    broken = concept_dir / "nan.safetensors"
    save_file({k: torch.full_like(v, float("nan")) for k, v in weights.items()}, str(broken))
    extra = f"checkpoints: [{{path: {lora}}}, {{path: {broken}}}]\n"
    result, text = _invoke("run", str(write_config(concept_dir, extra)))
    assert result.exit_code == 1, result.output
    assert "10 failure(s) recorded" in text
    assert "nan: image contains NaN/inf values" in text
    db = RunStore(concept_dir / "out")
    assert db.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 20  # base + ok
    board = pd.read_csv(concept_dir / "out" / "leaderboard.csv")
    assert board["clip_i.trigger"].notna().sum() == 2


def test_metric_that_raises_is_recorded(concept_dir: Path) -> None:
    config = write_config(concept_dir, "images_per_prompt: 1\n")
    config.write_text(
        config.read_text()
        .replace("images_per_prompt: 2\n", "")
        .replace("[clip_i, clip_t]", "[clip_i, vendi]")
    )
    result, text = _invoke("run", str(config))
    assert result.exit_code == 1, result.output
    assert "score vendi/base/zyx/trigger: ValueError: diversity needs at least 2 images" in text
    board = pd.read_csv(concept_dir / "out" / "leaderboard.csv")
    assert board.loc[0, "clip_i.trigger"] > 0  # the other metric was still computed


def test_path_traversal_names_are_sanitised(concept_dir: Path, lora: Path) -> None:
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("..") == "unnamed"
    extra = f"checkpoints: [{{path: {lora}, name: '../../../outside'}}]\n"
    rows = resolve_checkpoints(load_config(write_config(concept_dir, extra)))
    assert rows[1].name == "outside" and "/" not in rows[1].name
    concept = concept_dir / "zyx.yaml"
    concept.write_text(concept.read_text().replace("name: zyx", "name: ../evil"))
    result, text = _invoke("run", str(write_config(concept_dir)))
    assert result.exit_code == 2 and "zyx.yaml: name: String should match pattern" in text


def test_pickle_checkpoint_refused_by_default(concept_dir: Path, lora: Path) -> None:
    pickled = concept_dir / "old.ckpt"
    torch.save(load_file(str(lora)), pickled)
    result, text = _invoke(
        "run", str(write_config(concept_dir, f"checkpoints: [{{path: {pickled}}}]\n"))
    )
    assert result.exit_code == 1
    assert f"load old: {pickled}: pickle checkpoints can run code when loaded" in text
    allowed, _ = _invoke(
        "run",
        str(write_config(concept_dir, f"checkpoints: [{{path: {pickled}}}]\n")),
        "--allow-pickle",
    )
    assert allowed.exit_code == 0, allowed.output


def test_adapter_for_another_architecture(concept_dir: Path) -> None:
    foreign = concept_dir / "sdxl.safetensors"
    module = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    tensors = {
        f"{module}.lora_down.weight": torch.zeros(4, 640),
        f"{module}.lora_up.weight": torch.zeros(640, 4),
    }
    save_file(tensors, str(foreign))
    result, text = _invoke(
        "run", str(write_config(concept_dir, f"checkpoints: [{{path: {foreign}}}]\n"))
    )
    assert result.exit_code == 1
    assert (
        f"load sdxl: {foreign}: adapter does not fit the base model: 0 of 1 modules matched" in text
    )


def test_disk_full_keeps_what_was_written(concept_dir: Path, monkeypatch) -> None:
    real_write = store_module.atomic_write_bytes
    calls = {"n": 0}

    def failing_write(path: Path, data: bytes) -> None:
        if path.suffix == ".png":
            calls["n"] += 1
            if calls["n"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(store_module, "atomic_write_bytes", failing_write)
    config = write_config(concept_dir)
    result, text = _invoke("run", str(config))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "disk full (No space left on device); everything written so far is kept" in text
    assert len(RunStore(concept_dir / "out").existing_images()) == 3  # the 4th PNG failed
    monkeypatch.setattr(store_module, "atomic_write_bytes", real_write)
    again, text = _invoke("run", str(config))
    assert again.exit_code == 0 and "rendered 7 images" in text

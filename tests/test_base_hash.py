"""The ``ss_sd_model_hash`` check compares like with like, or says it cannot compare.

sd-scripts records ``model_hash`` (8 hex digits over 64 KiB at offset 1 MiB of the base
file) and ``calculate_sha256`` (the whole file) when it trains from a single file,
``IsADirectory`` for a diffusers folder and nothing for a hub id.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from t2i_bench.checkpoints import base_hash_warning, base_hashes_of, kohya_model_hash
from t2i_bench.hashing import tree_sha256


@pytest.fixture()
def base_file(tmp_path: Path) -> Path:
    path = tmp_path / "v1-5-pruned-emaonly.safetensors"
    path.write_bytes(bytes(range(256)) * 8192)  # 2 MiB, different at every offset
    base_hashes_of.cache_clear()
    return path


def test_kohya_model_hash_reads_64_kib_at_1_mib(base_file: Path) -> None:
    data = base_file.read_bytes()
    assert kohya_model_hash(base_file) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    shifted = base_file.with_name("shifted.safetensors")
    shifted.write_bytes(data[1:] + data[:1])
    assert kohya_model_hash(shifted) != kohya_model_hash(base_file)


def test_single_file_base(base_file: Path, tmp_path: Path) -> None:
    legacy = kohya_model_hash(base_file)
    full = hashlib.sha256(base_file.read_bytes()).hexdigest()
    source = str(base_file)
    same = {"ss_sd_model_hash": legacy, "ss_new_sd_model_hash": full}
    assert base_hash_warning(same, source) is None
    assert base_hash_warning({"ss_sd_model_hash": legacy}, source) is None
    other = {"ss_sd_model_hash": "deadbeef", "ss_sd_model_name": "other.safetensors"}
    assert base_hash_warning(other, source) == (
        "trained on another base-model file (ss_sd_model_hash=deadbeef, "
        f"ss_sd_model_name=other.safetensors; this base's is {legacy})"
    )
    assert base_hash_warning({"ss_sd_model_hash": "IsADirectory"}, source) is None
    assert base_hash_warning({"ss_sd_model_name": "runwayml/x"}, source) is None


def test_folder_base_never_claims_another_model(base_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "diffusers"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text("{}")
    meta = {"ss_sd_model_hash": "deadbeef", "ss_sd_model_name": "model.safetensors"}
    assert base_hash_warning(meta, str(folder)) == (
        "cannot compare the base-model hash it records (ss_sd_model_hash=deadbeef, "
        "ss_sd_model_name=model.safetensors) with this base model: kohya hashes the bytes of "
        "a single-file checkpoint and the base here is a diffusers folder"
    )
    tree = tree_sha256(folder)  # t2i-bench's own folder hash (the demo records it)
    assert (
        base_hash_warning({"ss_sd_model_hash": tree[:8], "ss_new_sd_model_hash": tree}, str(folder))
        is None
    )
    assert base_hash_warning({"ss_sd_model_hash": "IsADirectory"}, str(folder)) is None
    # a hub snapshot keeps the single file beside the diffusers subfolders
    (folder / base_file.name).write_bytes(base_file.read_bytes())
    base_hashes_of.cache_clear()
    assert base_hash_warning({"ss_sd_model_hash": kohya_model_hash(base_file)}, str(folder)) is None


def test_hub_id_and_tiny_cannot_compare(base_file: Path) -> None:
    meta = {"ss_sd_model_hash": "deadbeef"}
    assert "the base here is a hub id" in base_hash_warning(meta, "org/not-cached")
    assert "the base here is a tiny built-in model" in base_hash_warning(meta, "tiny")

"""The embed and score stages: one forward per image per backbone across all metrics, and
metric values that do not depend on the embedding batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from adapter_files import write_lycoris_file
from conftest import write_config
from PIL import Image
from typer.testing import CliRunner

from t2i_bench import runner
from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.metrics.base import available_metrics

ALL_METRICS = sorted(available_metrics())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, Path]:
    """A rendered run (base + one LoHa) with every metric, and its config."""
    folder = tmp_path_factory.mktemp("scoring")
    images = folder / "zyx"
    images.mkdir()
    for i in range(3):
        array = np.zeros((64, 64, 3), np.uint8)
        array[16:48, 16:48, i] = 220
        Image.fromarray(array).save(images / f"img_{i}.png")
    (folder / "zyx.yaml").write_text(
        "name: zyx\ntrigger: zyx\nclass_word: toy\ncategory: object\nimages: zyx\n"
    )
    pipe = load_base_pipeline("tiny", seed=0)
    adapter = write_lycoris_file(pipe, folder / "loha.safetensors", algo="loha", seed=5)
    config = write_config(folder, f"checkpoints: [{{path: {adapter}}}]\n")
    every_metric = f"metrics: [{', '.join(ALL_METRICS)}]\n"
    config.write_text(config.read_text().replace("metrics: [clip_i, clip_t]\n", every_metric))
    result = CliRunner().invoke(app, ["generate", str(config)])
    assert result.exit_code == 0, result.output
    return folder, config


def _score(config: Path, batch_size: int) -> tuple[dict, dict[str, int], int]:
    bench = runner.prepare(config)
    bench.config.backbones.batch_size = batch_size
    bench.store.conn.execute("DELETE FROM embeddings")
    bench.store.conn.execute("DELETE FROM text_embeddings")
    bench.store.conn.execute("DELETE FROM scores")
    try:
        embedded = runner.embed(bench)
        forwards_after_embed = {
            r: bench.backbones.get(r).forward_calls for r in bench.backbones._built
        }
        summary = runner.score(bench)
        assert summary.failed == 0, bench.store.failures()
        forwards = {r: b.forward_calls for r, b in bench.backbones._built.items()}
        assert forwards == forwards_after_embed  # scoring reads embeddings, never images
        rows = bench.store.conn.execute(
            "SELECT metric, checkpoint, concept, prompt_type, item, value FROM scores"
        ).fetchall()
    finally:
        bench.close()
    return {tuple(r[:5]): r[5] for r in rows}, forwards, embedded


def test_one_forward_per_image_per_backbone(rendered) -> None:
    folder, config = rendered
    values, forwards, embedded = _score(config, batch_size=1)
    # 2 rows x 5 prompt types x 2 seeds, the base without the concept for prompt_similarity
    # (alter and style x 2 seeds), plus 3 reference images
    n_images = 20 + 4 + 3
    assert set(forwards) == {
        "clip",
        "dino",
        "inception",
        "lpips",
        "vgg",
        "pickscore",
        "image_reward",
        "dreamsim",
        "hpsv2",
        "clip_vit_l14_336",
        "clip_vit_l14_openai",  # the aesthetic head's backbone (the clip role is clip_vit_l14)
    }
    assert all(count == n_images for count in forwards.values()), forwards
    assert embedded == n_images * len(forwards)
    assert {key[0] for key in values} == set(ALL_METRICS)


def test_values_do_not_depend_on_batch_size(rendered) -> None:
    folder, config = rendered
    reference, _, _ = _score(config, batch_size=32)
    for size in (1, 7):
        values, _, _ = _score(config, batch_size=size)
        assert values.keys() == reference.keys()
        for key, value in reference.items():
            assert values[key] == pytest.approx(value, rel=1e-5, abs=1e-5), (size, key)

"""The embed and score stages: one forward per image per backbone across all metrics, and
metric values that do not depend on the embedding batch size."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapter_files import write_lycoris_file
from conftest import write_concept, write_config
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
    write_concept(folder, captions=False)
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
        forwards_after_embed = {r: b.forward_calls for r, b in bench.backbones.built.items()}
        summary = runner.score(bench)
        assert summary.failed == 0, bench.store.failures()
        forwards = {r: b.forward_calls for r, b in bench.backbones.built.items()}
        assert forwards == forwards_after_embed  # scoring reads embeddings, never images
        rows = bench.store.conn.execute(
            "SELECT metric, checkpoint, concept, prompt_type, item, value FROM scores"
        ).fetchall()
    finally:
        bench.close()
    return {tuple(r[:5]): r[5] for r in rows}, forwards, embedded


def test_one_forward_per_image_per_backbone(rendered) -> None:
    """Each backbone embeds exactly the images some metric reads with it, once."""
    folder, config = rendered
    values, forwards, embedded = _score(config, batch_size=1)
    # Per (checkpoint, prompt type): 1 prompt x 2 seeds; 2 checkpoints (base, loha); 3 refs.
    # The metrics' declarations decide which images each backbone sees:
    expected = {
        # clip_i (train/trigger/alter + refs), clip_t (alter/style), prompt_similarity (the
        # base's images of alter/style prompts without the concept: 4 more)
        "clip": 2 * 4 * 2 + 3 + 4,
        # dino, scd (train/trigger/alter + refs), vendi (trigger/alter/style), dino_base
        # (loha's agnostic/style and the base's images of the same prompts)
        "dino": 2 * 5 * 2 + 3,
        "inception": 2 * 3 * 2 + 3,  # fid, kid: train/trigger/alter + refs
        "lpips": 2 * 3 * 2 + 3,  # lpips_div: trigger/alter/style, refs for its baseline
        "vgg": 2 * 2 * 2,  # style_loss_base: loha's agnostic/style + the base's twins
        "pickscore": 2 * 4 * 2,  # trigger/alter/style/agnostic
        "image_reward": 2 * 4 * 2,
        # dreamsim (train/trigger/alter + refs), dreamsim_base (agnostic/style + the base's
        # twins), bleed_dreamsim (agnostic + refs)
        "dreamsim": 2 * 5 * 2 + 3,
        "hpsv2": 2 * 5 * 2,  # every prompt type
        # cmmd (train/trigger/alter + refs), cmmd_base (agnostic + the base's twins)
        "clip_vit_l14_336": 2 * 4 * 2 + 3,
        "clip_vit_l14_openai": 2 * 5 * 2,  # the aesthetic head's backbone, every prompt type
    }
    assert forwards == expected
    assert embedded == sum(expected.values())
    assert {key[0] for key in values} == set(ALL_METRICS)


def test_values_do_not_depend_on_batch_size(rendered) -> None:
    folder, config = rendered
    reference, _, _ = _score(config, batch_size=32)
    for size in (1, 7):
        values, _, _ = _score(config, batch_size=size)
        assert values.keys() == reference.keys()
        for key, value in reference.items():
            assert values[key] == pytest.approx(value, rel=1e-5, abs=1e-5), (size, key)

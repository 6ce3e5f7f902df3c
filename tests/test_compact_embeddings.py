"""Compact run folders: the large embeddings (LPIPS spatial features, VGG Gram matrices,
ImageReward image tokens) of generated images are dropped once every value that reads them is
stored; values are bit-identical to keeping them, a cached rerun embeds nothing, and a value
that must be recomputed embeds exactly the images it reads again."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapter_files import write_lycoris_file
from conftest import write_concept, write_config
from typer.testing import CliRunner

from t2i_bench import runner
from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.loads import MODEL_LOADS

METRICS = ["lpips_div", "style_loss_base", "image_reward", "clip_i", "pickscore"]
TRANSIENT = {"lpips", "vgg", "image_reward"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compact")
    write_concept(folder, captions=False)
    adapter = write_lycoris_file(load_base_pipeline("tiny"), folder / "a.safetensors", seed=3)
    config = write_config(folder, f"checkpoints: [{{path: {adapter}}}]\n")
    text = config.read_text().replace(
        "metrics: [clip_i, clip_t]", f"metrics: [{', '.join(METRICS)}]"
    )
    config.write_text(text)
    result = CliRunner().invoke(app, ["generate", str(config)])
    assert result.exit_code == 0, result.output
    return config


def _values(bench) -> dict[tuple, float]:
    rows = bench.store.conn.execute(
        "SELECT metric, checkpoint, concept, prompt_type, item, value FROM scores"
    ).fetchall()
    return {tuple(r[:5]): r[5] for r in rows}


def _stored(bench) -> dict[str, set[str]]:
    roles = {r for m in bench.metrics for r in m.roles}
    return {r: bench.store.embedded(bench.backbones.identity(r)) for r in roles}


def _fresh(config: Path):
    bench = runner.prepare(config)
    for table in ("embeddings", "text_embeddings", "scores"):
        bench.store.conn.execute(f"DELETE FROM {table}")
    return bench


def test_large_embeddings_are_dropped_after_scoring_with_identical_values(
    rendered: Path, monkeypatch
) -> None:
    # reference: the same run keeping every embedding
    bench = _fresh(rendered)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(runner, "drop_transient_embeddings", lambda run: 0)
            runner.embed(bench)
            assert runner.score(bench).failed == 0, bench.store.failures()
        kept = _values(bench)
        full = _stored(bench)
    finally:
        bench.close()
    bench = _fresh(rendered)
    try:
        runner.embed(bench)
        assert runner.score(bench).failed == 0, bench.store.failures()
        assert _values(bench) == kept  # bit-identical
        stored = _stored(bench)
        refs = set(runner.reference_shas(bench.concepts))
        for role in TRANSIENT:
            assert bench.backbones.spec(role).transient
            assert stored[role] <= refs  # only reference images keep them
            assert full[role] - refs  # ... of all the generated ones it embedded
        assert stored["lpips"] == refs  # lpips_div's reference baseline reads them each run
        for role in ("clip", "pickscore"):
            assert not bench.backbones.spec(role).transient and stored[role] == full[role]
        baselines = bench.store.baselines_frame()
        assert baselines.loc[baselines.metric == "lpips_div", "value"].notna().all()
    finally:
        bench.close()

    # a fully cached rerun embeds nothing and loads no model
    loads = MODEL_LOADS["backbone"]
    bench = runner.prepare(rendered)
    try:
        assert runner.embed(bench) == 0
        summary = runner.score(bench)
        assert summary.computed == 0 and summary.failed == 0
        assert MODEL_LOADS["backbone"] == loads
        assert _values(bench) == kept
    finally:
        bench.close()


def test_a_value_to_recompute_embeds_exactly_its_images_again(rendered: Path) -> None:
    bench = _fresh(rendered)
    try:
        runner.embed(bench)
        runner.score(bench)
        before = _values(bench)
        # style_loss_base must be recomputed (as after a metric version change)
        bench.store.conn.execute("DELETE FROM scores WHERE metric = 'style_loss_base'")
        vgg = bench.backbones.identity("vgg")
        needs = runner.embedding_needs(
            runner.groups(bench), bench.metrics, bench.base.name, runner._unscored(bench)
        )
        todo = {
            role: shas - bench.store.embedded(bench.backbones.identity(role))
            for role, shas in needs.items()
        }
        assert {role for role, shas in todo.items() if shas} == {"vgg"}  # only what it reads
        assert runner.embed(bench) == len(todo["vgg"]) > 0
        summary = runner.score(bench)
        assert summary.computed > 0 and summary.failed == 0
        assert _values(bench) == before
        assert not bench.store.embedded(vgg)  # dropped again
    finally:
        bench.close()


def test_bytes_per_generated_image(rendered: Path) -> None:
    """What the store keeps per generated image after a run: only the small embeddings."""
    bench = _fresh(rendered)
    try:
        runner.embed(bench)
        runner.score(bench)
        refs = set(runner.reference_shas(bench.concepts))
        rows = bench.store.conn.execute(
            "SELECT sha256, backbone, length(vector) FROM embeddings"
        ).fetchall()
        generated = {sha for sha, _, _ in rows if sha not in refs}
        per_role: dict[str, int] = {}
        for sha, backbone, size in rows:
            if sha not in refs:
                per_role[backbone.split("|")[0]] = per_role.get(backbone.split("|")[0], 0) + size
        assert set(per_role) == {"clip_vit_l14", "pickscore"}
        assert sum(per_role.values()) / len(generated) <= 2 * 64 * 4  # two 64-d float32 (tiny)
    finally:
        bench.close()

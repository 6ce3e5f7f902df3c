"""The new metric plugins on planted groups, and a tiny run where the aesthetic head shares the
CLIP ViT-L/14 embeddings of the clip role (one model, one forward per image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_concept, write_config
from typer.testing import CliRunner

from t2i_bench import runner
from t2i_bench.backbones.heads import load_head
from t2i_bench.cli import app
from t2i_bench.metrics.base import SET_ITEM, Group, get_metric
from t2i_bench.metrics.embed import Backbones
from t2i_bench.metrics.score import group_identity


def _group(feats: dict[str, np.ndarray], images: list[str], refs: list[str], base=None) -> Group:
    return Group(
        checkpoint="ckpt",
        concept=None,  # type: ignore[arg-type]
        prompt_type="agnostic",
        image_keys=[f"key-{s}" for s in images],
        image_shas=images,
        prompts=["a prompt"] * len(images),
        seeds=list(range(len(images))),
        reference_shas=refs,
        variants={"base": base or [None] * len(images)},
        features=lambda role, shas: np.stack([feats[s] for s in shas]),
        text_features=lambda role, texts: None,
    )


def test_bleed_plugin_planted() -> None:
    rng = np.random.default_rng(0)
    concept = np.zeros(16)
    concept[3] = 1.0
    feats = {f"r{i}": concept + 0.1 * rng.normal(size=16) for i in range(4)}
    for i in range(6):
        feats[f"b{i}"] = rng.normal(size=16)
        feats[f"clean{i}"] = feats[f"b{i}"].copy()
        feats[f"leak{i}"] = feats[f"b{i}"] + 4.0 * concept
    refs = [f"r{i}" for i in range(4)]
    base = [f"b{i}" for i in range(6)]
    metric = get_metric("bleed")
    clean = metric.compute(_group(feats, [f"clean{i}" for i in range(6)], refs, base))
    leak = metric.compute(_group(feats, [f"leak{i}" for i in range(6)], refs, base))
    assert set(clean) == {f"key-clean{i}" for i in range(6)}
    assert max(abs(v) for v in clean.values()) < 1e-12
    assert min(leak.values()) > 0.3
    assert not metric.higher_is_better and metric.compares_with_base


def test_copy_rate_plugin_planted_and_pairs() -> None:
    from t2i_bench.metrics.plugins.leakage import nearest_pairs

    feats = {f"r{i}": np.eye(8)[i] + 0.1 for i in range(5)}
    feats["copy"] = feats["r3"].copy()
    feats["new"] = -np.ones(8)
    group = _group(feats, ["copy", "new"], [f"r{i}" for i in range(5)])
    assert get_metric("copy_rate").compute(group) == {"key-copy": 1.0, "key-new": 0.0}
    pairs = nearest_pairs(group)
    assert pairs[0].reference_sha == "r3" and pairs[0].distance == pytest.approx(0.0, abs=1e-12)
    assert pairs[0].is_copy and not pairs[1].is_copy
    feats["r4"] = feats["r0"].copy()  # duplicate references: threshold 0, flagged in notes
    get_metric("copy_rate").compute(group)
    assert any("duplicates" in note for note in group.notes)


def test_dreamsim_and_cmmd_plugins_on_planted_groups() -> None:
    rng = np.random.default_rng(1)
    feats = {f"r{i}": rng.normal(size=12) for i in range(3)}
    feats |= {f"g{i}": feats[f"r{i % 3}"] for i in range(4)}
    feats |= {f"x{i}": rng.normal(size=12) for i in range(4)}
    group = _group(feats, [f"g{i}" for i in range(4)], ["r0", "r1", "r2"])
    sims = get_metric("dreamsim").compute(group)
    assert len(sims) == 4 and all(-1 <= v <= 1 for v in sims.values())
    base = _group(feats, [f"g{i}" for i in range(4)], [], base=[f"g{i}" for i in range(4)])
    assert get_metric("cmmd_base").compute(base)[SET_ITEM] == pytest.approx(0.0, abs=1e-9)
    far = _group(feats, [f"x{i}" for i in range(4)], [], base=[f"g{i}" for i in range(4)])
    assert get_metric("cmmd_base").compute(far)[SET_ITEM] > 0.1
    assert get_metric("dreamsim_base").compute(base) == {
        f"key-g{i}": pytest.approx(1.0) for i in range(4)
    }


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> Path:
    """Base + nothing else, the clip role set to OpenAI's ViT-L/14, clip_i and aesthetic."""
    folder = tmp_path_factory.mktemp("shared")
    write_concept(folder, captions=False)
    config = write_config(folder, "backbones: {clip: clip_vit_l14_openai}\n")
    text = config.read_text().replace("metrics: [clip_i, clip_t]", "metrics: [clip_i, aesthetic]")
    config.write_text(text)
    result = CliRunner().invoke(app, ["generate", str(config)])
    assert result.exit_code == 0, result.output
    return config


def test_aesthetic_shares_the_clip_roles_embeddings(shared_run: Path) -> None:
    bench = runner.prepare(shared_run)
    try:
        embedded = runner.embed(bench)
        built = bench.backbones._built
        # one model for both roles: roles with the same backbone identity embed once
        assert len({id(model) for model in built.values()}) == 1
        assert set(built) <= {"clip", "clip_vit_l14_openai"}
        n_images = 10 + 3  # base: 5 prompt types x 2 seeds, plus 3 references
        assert embedded == n_images  # each image embedded once, for both roles
        summary = runner.score(bench)
        assert summary.failed == 0, bench.store.failures()
        rows = bench.store.conn.execute(
            "SELECT item, value FROM scores WHERE metric = 'aesthetic'"
        ).fetchall()
        assert len(rows) == 10
        keys = [r[0] for r in rows]
        shas = [bench.store.image_rows()[k][1] for k in keys]
        feats = bench.store.get_embeddings(bench.backbones.identity("clip"), shas)
        expected = load_head("laion_aesthetic_v2", "tiny").apply(feats)
        np.testing.assert_allclose([r[1] for r in rows], expected, atol=1e-6)  # float32 MLP
    finally:
        bench.close()


def test_the_heads_weights_are_in_the_value_identity(shared_run: Path, monkeypatch) -> None:
    from t2i_bench.backbones import heads
    from t2i_bench.config import BackbonesConfig

    backbones = Backbones(BackbonesConfig(clip="clip_vit_l14_openai"))
    metric = get_metric("aesthetic")
    group = _group({"a": np.zeros(4)}, ["a"], [])
    before = group_identity(metric, group, backbones)

    other = "laion_aesthetic_v2|tiny|v1|on:clip_vit_l14_openai|sha256:other"
    monkeypatch.setattr("t2i_bench.metrics.score.head_identity", lambda name, profile: other)
    assert group_identity(metric, group, backbones) != before
    # the static identity is the one a loaded head has
    assert (
        heads.head_identity("laion_aesthetic_v2") == heads.load_head("laion_aesthetic_v2").identity
    )

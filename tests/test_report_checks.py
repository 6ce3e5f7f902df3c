"""The report's answers and checks in a real run on the tiny base model: which checkpoint per
axis, metric agreement, the variance breakdown and its seed advice, copy_rate's nearest
reference pairs, and metrics against a multiplier sweep."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from adapter_files import write_lycoris_file
from conftest import write_config
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.metrics.agreement import agreement_matrix
from t2i_bench.metrics.variance import variance_table
from t2i_bench.runner import prepare

METRICS = "[clip_i, dino, vendi, clip_t, bleed, copy_rate, dino_base]"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> tuple[Path, str]:
    """A run: base + two LyCORIS files, each at multipliers 0.5 and 1 (and its console)."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("checks")
    images = folder / "zyx"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        array = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(array).save(images / f"img_{i}.png")
        (images / f"img_{i}.txt").write_text(f"a photo of zyx toy, view {i}")
    (folder / "zyx.yaml").write_text(
        "name: zyx\ntrigger: zyx\nclass_word: toy\ncategory: object\nimages: zyx\n"
    )
    loras = folder / "loras"
    loras.mkdir()
    pipe = load_base_pipeline("tiny", 0)
    write_lycoris_file(pipe, loras / "zyx-lora.safetensors", algo="lora", seed=1)
    write_lycoris_file(pipe, loras / "zyx-loha.safetensors", algo="loha", seed=2)
    extra = (
        f"checkpoints: [{{glob: '{loras}/*.safetensors', multipliers: [0.5, 1.0]}}]\n"
        f"metrics: {METRICS}\n"
    )
    config = write_config(folder, extra)
    text = config.read_text().replace("max_per_type: 1", "max_per_type: 3")
    config.write_text(text.replace("metrics: [clip_i, clip_t]\n", ""))
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_which_checkpoint_in_files_console_and_page(run_dir) -> None:
    folder, console = run_dir
    out = folder / "out"
    choice = pd.read_csv(out / "analysis" / "choice.csv")
    assert list(choice["axis"]) == ["fidelity", "controllability", "diversity", "preservation"]
    board = pd.read_csv(out / "leaderboard.csv").set_index("checkpoint")
    for row in choice.itertuples(index=False):
        scores = board[f"axis_{row.axis}"]
        assert row.best == scores.idxmax() and row.score == pytest.approx(scores.max())
        assert row.runner_up == scores.drop(row.best).idxmax()
        assert row.vs_runner_up_low <= row.vs_runner_up_high
        assert bool(row.better_than_runner_up) == (row.vs_runner_up_low > 0)
    text = " ".join(console.split())
    assert "Which checkpoint: best per axis" in text
    for row in choice.itertuples(index=False):
        assert f"{row.axis} {row.best} ({row.score:.2f})" in text
    assert "Pareto set over the axes" in text
    html = (out / "report" / "index.html").read_text()
    assert "which checkpoint should I use?" in html
    assert html.index('id="overview"') < html.index('id="leaderboard"') < html.index('id="metrics"')


def test_agreement_and_variance_files_match_their_functions(run_dir) -> None:
    folder, _ = run_dir
    out = folder / "out"
    metrics = pd.read_csv(out / "metrics.csv")
    run = prepare(folder / "cfg.yaml")
    try:
        higher = {m.name: m.higher_is_better for m in run.metrics}
    finally:
        run.close()
    agreement = pd.read_csv(out / "analysis" / "agreement.csv")
    expected = agreement_matrix(metrics[["metric", "checkpoint", "prompt_type", "value"]], higher)
    pd.testing.assert_frame_equal(agreement, expected, check_exact=False, rtol=1e-8)
    assert agreement["rho"].notna().any()
    variance = pd.read_csv(out / "analysis" / "variance.csv")
    scores = pd.read_parquet(out / "scores.parquet")
    rows = scores[scores["kind"].eq("image")].astype({"seed": "int64"})
    expected = variance_table(
        rows[["metric", "concept", "prompt_type", "checkpoint", "prompt", "seed", "value"]]
    )
    assert set(variance["metric"]) == set(expected["metric"]) >= {"clip_t", "bleed"}
    np.testing.assert_allclose(variance["residual"], expected["residual"], rtol=1e-8)
    html = (out / "report" / "index.html").read_text()
    for row in expected.to_dict("records"):
        if row["checkpoint"] > 0 and pd.notna(row["seeds_needed"]):
            need = int(row["seeds_needed"])
            assert f"use {need} seed{'s' if need != 1 else ''} per prompt to tell these" in html
    assert 'src="plots/agreement.png"' in html and "How many seeds per prompt" in html


def test_nearest_pairs_side_by_side_with_brute_force_distances(run_dir) -> None:
    folder, _ = run_dir
    out = folder / "out"
    pairs = pd.read_csv(out / "report" / "plots" / "nearest_pairs.csv")
    assert len(pairs) and set(pairs["metric"]) == {"copy_rate"}
    assert pairs["distance"].is_monotonic_increasing  # the closest first (one concept)
    run = prepare(folder / "cfg.yaml")
    try:
        identity = run.backbones.identity("dino")
        refs = run.reference_shas["zyx"]
        ref = run.store.get_embeddings(identity, refs).astype(np.float64)
        shas = dict(
            zip(
                [j.image_key for j in run.store.rendered_jobs()],
                [j.sha256 for j in run.store.rendered_jobs()],
                strict=True,
            )
        )
        for row in pairs.itertuples(index=False):
            gen = run.store.get_embeddings(identity, [shas[row.image_key]])[0].astype(np.float64)
            cos = ref @ gen / (np.linalg.norm(ref, axis=1) * np.linalg.norm(gen))
            assert row.distance == pytest.approx(1 - cos.max(), abs=1e-6)
            assert row.reference_sha == refs[int(np.argmax(cos))]
    finally:
        run.close()
    html = (out / "report" / "index.html").read_text()
    start = html.index('<table class="pairs">')
    table = html[start : html.index("</table>", start)]
    assert table.count('alt="generated image"') == table.count('alt="nearest reference image"')
    assert table.count('alt="generated image"') == len(pairs)
    for src in re.findall(r'src="(thumbs/[^"]+)"', table):
        assert (out / "report" / src).is_file()


def test_metrics_against_the_multiplier(run_dir) -> None:
    folder, _ = run_dir
    out = folder / "out"
    frame = pd.read_csv(out / "report" / "plots" / "multiplier.csv")
    assert set(frame["file"]) == {"zyx-lora.safetensors", "zyx-loha.safetensors", "base"}
    adapters = frame[frame["file"].ne("base")]
    assert set(adapters["multiplier"]) == {0.5, 1.0}
    assert {"bleed.agnostic", "dino.trigger", "clip_i.trigger"} <= set(frame["column"])
    board = pd.read_csv(out / "leaderboard.csv").set_index("checkpoint")
    for row in adapters.itertuples(index=False):
        assert row.value == pytest.approx(board.loc[row.checkpoint, row.column])
    assert 'src="plots/multiplier.png"' in (out / "report" / "index.html").read_text()

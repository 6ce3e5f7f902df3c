"""The report stage: tables, analysis, plots and an HTML page that escapes what it shows."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import write_config
from PIL import Image
from typer.testing import CliRunner

from t2i_bench.analysis import read_configs_table, read_metrics_table
from t2i_bench.analysis.analyze import run_analysis
from t2i_bench.analysis.bootstrap import GROUP_REPLICATES
from t2i_bench.checkpoints import Checkpoint
from t2i_bench.cli import app
from t2i_bench.concepts import Concept
from t2i_bench.config import RunConfig
from t2i_bench.hashing import stable_hash
from t2i_bench.metrics.base import SET_ITEM, get_metric
from t2i_bench.plan import ImageJob
from t2i_bench.provenance import provenance
from t2i_bench.report.build import write_report
from t2i_bench.store import RunStore

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ALGOS = ("lora", "loha", "lokr")
LRS = (1e-4, 3e-4, 1e-3, 3e-3)
PROMPTS = {
    "train": f"a photo of zyx toy {SCRIPT}",
    "trigger": "zyx toy",
    "alter": "zyx toy in a chef's outfit",
    "style": "zyx toy in the style of watercolor painting",
    "agnostic": "a lighthouse on a rocky coast",
}
SEEDS = (0, 1)


def synthetic_run(root: Path, algos=ALGOS, lrs=LRS, epochs=(10,)) -> SimpleNamespace:
    """A run store filled directly: base + one checkpoint per (algo, lr, epoch), real PNGs,
    and scores with a planted effect (clip_t and clip_i rise with log10 lr; lokr is worse;
    with several epochs clip_i rises and clip_t falls with the epoch)."""
    config = RunConfig.model_validate(
        {"name": f"synthetic {SCRIPT}", "output_dir": str(root), "concepts": ["zyx.yaml"]}
    )
    store = RunStore(root)
    checkpoints = [Checkpoint("base", None)]
    for algo, lr, epoch in itertools.product(algos, lrs, epochs):
        name = f"zyx-{algo}-lr{lr:g}" + (f"-e{epoch}" if len(epochs) > 1 else "")
        hyper = {"algo": algo, "lr": lr, "dim": 8, "alpha": 4, "epoch": epoch, "seed": 0}
        path = Path(f"/abs/path/{name}.safetensors")
        checkpoints.append(Checkpoint(name, path, hyperparameters=hyper, format="lycoris"))
    jobs = [_job(c.name, pt, seed) for c in checkpoints for pt in PROMPTS for seed in SEEDS]
    store.write_plan(checkpoints, jobs)
    store.set_meta("provenance", provenance(config.model_dump(mode="json")))
    store.set_meta("backbone_profile", "tiny")
    _put_images(store, jobs, [c.name for c in checkpoints])
    _put_scores(store, checkpoints, jobs)
    store.record_failure("generate", "deadbeef", f"RuntimeError: bad pixels {SCRIPT}")
    note = "fid: 4 generated and 3 reference images for 2048-d features (n <= dim)"
    store.set_meta("score_notes", {"fid/base/zyx/train": [note]})
    concept = Concept("zyx", "zyx", "toy", "object", (), ())
    metrics = [get_metric("clip_i"), get_metric("clip_t")]
    return SimpleNamespace(config=config, store=store, concepts=[concept], metrics=metrics)


def _job(checkpoint: str, prompt_type: str, seed: int) -> ImageJob:
    key = stable_hash([checkpoint, prompt_type, seed], 32)
    prompt = PROMPTS[prompt_type]
    return ImageJob(key, checkpoint, "zyx", prompt_type, prompt, prompt, seed, seed)


def _put_images(store: RunStore, jobs: list[ImageJob], names: list[str]) -> None:
    for job in jobs:
        shade = 40 + 15 * names.index(job.checkpoint)
        array = np.full((32, 32, 3), shade % 256, np.uint8)
        array[8:24, 8:24, SEEDS.index(job.seed)] = 230
        store.put_image(job.key, Image.fromarray(array))


def _put_scores(store: RunStore, checkpoints: list[Checkpoint], jobs: list[ImageJob]) -> None:
    rng = np.random.default_rng(0)
    for ckpt in checkpoints:
        lr = ckpt.hyperparameters.get("lr", 1e-5)
        penalty = 0.05 if ckpt.hyperparameters.get("algo") == "lokr" else 0.0
        effect = math.log10(lr) + 5
        epoch = ckpt.hyperparameters.get("epoch", 10) - 10
        for prompt_type in ("train", "trigger", "alter"):
            value = 0.5 + 0.08 * effect - penalty + 0.01 * epoch + rng.normal(0, 0.005)
            replicates = value + rng.normal(0, 0.01, GROUP_REPLICATES)  # as scoring stores them
            store.put_scores(
                "clip_i", ckpt.name, "zyx", prompt_type, "i", {SET_ITEM: value}, replicates
            )
        for prompt_type in ("alter", "style"):
            keys = [
                j.key for j in jobs if j.checkpoint == ckpt.name and j.prompt_type == prompt_type
            ]
            values = {k: 0.3 - 0.03 * effect - 0.005 * epoch + rng.normal(0, 0.005) for k in keys}
            store.put_scores("clip_t", ckpt.name, "zyx", prompt_type, "t", values)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The run dir of a synthetic run with 12 configurations, reported once."""
    root = tmp_path_factory.mktemp("synthetic")
    write_report(synthetic_run(root))
    return root


def test_report_writes_every_file(report: Path) -> None:
    for name in ("leaderboard.csv", "metrics.csv", "checkpoints.csv", "scores.parquet"):
        assert (report / name).is_file(), name
    for name in ("summary.csv", "importance.csv", "r2.csv", "shap_summary.png", "plots.csv"):
        assert (report / "analysis" / name).is_file(), name
    for name in ("index.html", "assets/report.css", "assets/report.js", "plots/tradeoff.png"):
        assert (report / "report" / name).is_file(), name
    for name in ("tradeoff.csv", "ci_clip_i.png", "ci_clip_i.csv", "ci_clip_t.png"):
        assert (report / "report" / "plots" / name).is_file(), name
    assert len(list((report / "report" / "thumbs").glob("*.png"))) == 13 * 5 * 2


def test_leaderboard_has_cis_base_first_and_no_paths(report: Path) -> None:
    board = pd.read_csv(report / "leaderboard.csv")
    assert board["checkpoint"].iloc[0] == "base"
    assert len(board) == 13
    for col in ("clip_i.train", "clip_t.alter", "clip_t.style"):
        assert {col, f"{col}.ci_low", f"{col}.ci_high"} <= set(board.columns)
        assert (board[f"{col}.ci_low"] <= board[col]).all()
        assert (board[col] <= board[f"{col}.ci_high"]).all()
    assert (board["clip_t.alter.ci_high"] > board["clip_t.alter.ci_low"]).all()
    # a set metric's interval comes from the replicates stored with its value
    assert (board["clip_i.train.ci_high"] > board["clip_i.train.ci_low"]).all()
    text = (report / "leaderboard.csv").read_text()
    assert "/abs/path" not in text and "zyx-lora-lr0.001.safetensors" in text


def test_tables_follow_the_documented_formats(report: Path) -> None:
    metrics = read_metrics_table(report / "metrics.csv")
    configs = read_configs_table(report / "checkpoints.csv")
    assert set(configs["checkpoint"]) == set(metrics["checkpoint"])
    assert configs["config_id"].nunique() == 13
    per_image = metrics[metrics["metric"].eq("clip_t")]
    assert per_image["image"].str.match(r"^images/[0-9a-f]{2}/[0-9a-f]+\.png$").all()
    assert all((report / p).is_file() for p in per_image["image"])
    scores = pd.read_parquet(report / "scores.parquet")
    expected = {"checkpoint", "concept", "prompt_type", "prompt", "seed", "image", "metric"}
    assert expected | {"value"} <= set(scores.columns)
    image_rows = scores[scores["kind"].eq("image")]
    assert len(image_rows) == 13 * 2 * 2 and image_rows["prompt"].ne("").all()
    # the documented `analyze --table metrics.csv --configs checkpoints.csv` path reproduces
    # the analysis's leaderboard byte for byte; the run's leaderboard adds the choice columns
    directions = {"clip_i": True, "clip_t": True}
    out = run_analysis(metrics, configs, report / "again", directions, importance=False)
    assert (report / "again" / "leaderboard.csv").read_bytes() == (
        report / "analysis" / "leaderboard.csv"
    ).read_bytes()
    assert out.leaderboard["checkpoint"].iloc[0] == "base"
    board = pd.read_csv(report / "leaderboard.csv")
    added = ["axis_fidelity", "axis_fidelity.vs_base", "axis_controllability"]
    added += ["axis_controllability.vs_base", "pareto", "best_for"]
    at = list(board.columns).index("rank_score")
    assert list(board.columns[at + 1 : at + 1 + len(added)]) == added
    pd.testing.assert_frame_equal(
        board.drop(columns=added), pd.read_csv(report / "again" / "leaderboard.csv")
    )


def test_importance_finds_the_planted_effect(report: Path) -> None:
    importance = pd.read_csv(report / "analysis" / "importance.csv")
    top = importance[importance["rank"].eq(1)]
    assert set(top["feature"]) == {"log10_lr"}
    html = (report / "report" / "index.html").read_text()
    assert "../analysis/shap_summary.png" in html and "beeswarm_clip_t.alter.png" in html


def test_html_escapes_everything_from_data(report: Path) -> None:
    html = (report / "report" / "index.html").read_text()
    assert ESCAPED in html  # the train prompt, the run name and the failure's error
    assert "<script>alert(1)" not in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == ['<script src="assets/report.js" defer>']
    script = (report / "report" / "assets" / "report.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "http://" not in html and "https://" not in html


def test_html_shows_warnings_failures_and_links_relatively(report: Path) -> None:
    html = (report / "report" / "index.html").read_text()
    assert "numbers exercise the machinery, not real models" in html
    assert "deadbeef" in html and "1 failure(s) recorded" in html
    assert "fid: 1 value(s) come with a warning" in html and "2048-d features" in html
    for link in re.findall(r'(?:src|href)="([^"#]+)"', html):
        if link.startswith("data:"):
            continue
        assert not link.startswith("/") and "://" not in link, link
        if not link.endswith("/"):
            assert (report / "report" / link).resolve().is_file(), link


def test_report_is_deterministic(tmp_path: Path) -> None:
    small = {"algos": ("lora", "loha"), "lrs": (1e-4, 1e-3)}
    write_report(synthetic_run(tmp_path / "a", **small))
    write_report(synthetic_run(tmp_path / "b", **small))
    for name in ("leaderboard.csv", "metrics.csv", "checkpoints.csv", "report/plots/tradeoff.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_too_few_configurations_is_a_warning(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path, algos=("lora",), lrs=(1e-4, 1e-3))
    paths = write_report(run)
    assert tmp_path / "report" / "index.html" in paths
    warnings = (tmp_path / "analysis" / "warnings.txt").read_text()
    assert "needs at least 6 configurations" in warnings and "this run has 2" in warnings
    assert not (tmp_path / "analysis" / "importance.csv").exists()
    html = (tmp_path / "report" / "index.html").read_text()
    assert "needs at least 6 configurations" in html
    assert pd.read_csv(tmp_path / "leaderboard.csv")["checkpoint"].tolist()[0] == "base"


def test_cli_report_on_the_tiny_base_model(concept_dir: Path) -> None:
    for caption in (concept_dir / "zyx").glob("*.txt"):
        caption.write_text(f"a photo of zyx toy {SCRIPT}")
    result = CliRunner().invoke(app, ["run", str(write_config(concept_dir))])
    assert result.exit_code == 0, result.output
    out = concept_dir / "out"
    html = (out / "report" / "index.html").read_text()
    assert ESCAPED in html and "<script>alert(1)" not in html
    assert "this run has 0" in html  # base model only: no importance analysis, no crash
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["checkpoint"].tolist() == ["base"]
    assert {"clip_t.alter.ci_low", "clip_t.alter.ci_high"} <= set(board.columns)


def test_report_before_scoring_and_odd_names(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path / "empty", algos=("lora",), lrs=(1e-4,))
    run.store.conn.execute("DELETE FROM scores")
    run.store.conn.execute("DELETE FROM images")
    write_report(run)
    notes = (tmp_path / "empty" / "analysis" / "warnings.txt").read_text()
    assert "no metric values in the store yet" in notes
    board = pd.read_csv(tmp_path / "empty" / "leaderboard.csv")
    assert board["checkpoint"].tolist() == ["base", "zyx-lora-lr0.0001"]

    odd = synthetic_run(tmp_path / "odd", algos=("lo$\\foo$", 'a"b<i>'), lrs=(1e-4,))
    write_report(odd)  # matplotlib must draw the names as text, not mathtext
    html = (tmp_path / "odd" / "report" / "index.html").read_text()
    assert "a&#34;b&lt;i&gt;" in html and 'a"b<i>' not in html

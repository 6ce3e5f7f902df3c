"""The quickstart's planted truth, recovered by its own analysis (slow: builds the demo if it
is not cached, then runs the whole quickstart; about 2 minutes on 2 shared cores once the demo
is built, plus about 35 s to build it).

The demo's sweep is built so that a higher learning rate and a later epoch draw the concept
(a yellow ring with a purple dot) more strongly: both learning rates train in the regime where
every epoch moves the adapter further (t2i_bench/demo/build.py), and the demo's prompts ask
for colours and shapes the concept does not have ("a green olis toy", "olis toy as a blue
square"; prompts/demo.yaml). Read by the demo CLIP, pretrained on the procedural world the
prompts come from (backbone clip_demo), fidelity must therefore rise with both and text
alignment fall with both; the quickstart's hyperparameter analysis must say so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.demo.build import build_demo
from t2i_bench.metrics.base import get_metric

REPO = Path(__file__).resolve().parents[1]
FIDELITY = ("clip_i.train", "clip_i.trigger", "clip_i.alter")
DISTANCES = ("fid.train", "fid.trigger", "fid.alter")  # fidelity, lower is better
ALIGNMENT = ("clip_t.alter", "clip_t.style")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """The quickstart as the README runs it (its config, demo and backbones), in a temp dir."""
    build_demo(REPO / ".cache" / "demo")
    folder = tmp_path_factory.mktemp("quickstart")
    text = (REPO / "examples" / "quickstart.yaml").read_text().replace("../", f"{REPO}/")
    text = text.replace(f"output_dir: {REPO}/results/quickstart", f"output_dir: {folder / 'out'}")
    config = folder / "quickstart.yaml"
    config.write_text(text)
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return folder / "out"


def _effects(root: Path) -> pd.DataFrame:
    table = pd.read_csv(root / "analysis" / "importance.csv")
    return table[table["group"].eq("all")].set_index(["target", "feature"])


@pytest.mark.slow
def test_learning_rate_and_epoch_raise_fidelity(quickstart: Path) -> None:
    effects = _effects(quickstart)
    for target in FIDELITY:
        lr, epoch = effects.loc[(target, "log10_lr")], effects.loc[(target, "epoch")]
        assert lr["effect"] > 0.5 and lr["shape"] == "increasing", (target, lr)
        assert epoch["effect"] > 0.3, (target, epoch)
    for target in ("clip_i.trigger", "clip_i.alter"):
        assert effects.loc[(target, "epoch"), "shape"] == "increasing"
    for target in DISTANCES:  # the distance to the references falls
        assert effects.loc[(target, "log10_lr"), "effect"] < -0.5, target
        assert effects.loc[(target, "epoch"), "effect"] < -0.3, target


@pytest.mark.slow
def test_learning_rate_and_epoch_lower_text_alignment(quickstart: Path) -> None:
    effects = _effects(quickstart)
    for target in ALIGNMENT:
        lr, epoch = effects.loc[(target, "log10_lr")], effects.loc[(target, "epoch")]
        assert lr["effect"] < -0.5 and lr["shape"] == "decreasing", (target, lr)
        assert epoch["effect"] < -0.3, (target, epoch)
    assert effects.loc[("clip_t.style", "epoch"), "shape"] == "decreasing"


@pytest.mark.slow
def test_the_planted_effects_generalise(quickstart: Path) -> None:
    """Cross-validated R² (folds grouped by configuration) is above the 0.1 threshold for the
    planted targets: the directions are not an artefact of fitting 18 points."""
    r2 = pd.read_csv(quickstart / "analysis" / "r2.csv").set_index(["group", "target"])
    for target in (*FIDELITY, *DISTANCES, *ALIGNMENT):
        assert r2.loc[("all", target), "r2_cv"] > 0.1, (target, r2.loc[("all", target)])


@pytest.mark.slow
def test_every_set_metric_has_an_interval(quickstart: Path) -> None:
    """Set metrics show bootstrap intervals over prompts and seeds; the one exception is a
    diversity metric on the single trigger prompt with its 2 images, whose spread over seeds
    cannot be estimated from 2 images (blank, never collapsed to the value)."""
    board = pd.read_csv(quickstart / "leaderboard.csv")
    adapters = board[board["checkpoint"].ne("base")]
    set_metrics = {"clip_i", "dino", "scd", "fid", "kid", "kid_std", "vendi", "lpips_div"}
    checked = 0
    for column in [c for c in board.columns if c.endswith(".ci_low")]:
        mean = column.removesuffix(".ci_low")
        metric, prompt_type = mean.split(".")
        if metric not in set_metrics:
            continue
        low, high = adapters[column], adapters[f"{mean}.ci_high"]
        if get_metric(metric).axis == "diversity" and prompt_type == "trigger":
            assert low.isna().all() and high.isna().all(), mean
            continue
        assert (low < high).all() and (low <= adapters[mean]).all(), mean
        assert (adapters[mean] <= high).all(), mean
        checked += 1
    assert checked == 22  # 8 set metrics × 3 prompt types, less the 2 diversity × trigger

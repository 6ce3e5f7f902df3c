"""Plugins from outside the tree: a package installed with entry points adds a backbone and a
metric that needs an image variant of its own; list commands and a run see both, and no
core module names them."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, write_config

PLUGIN = REPO / "tests" / "plugins" / "example_plugin"
CLI = [sys.executable, "-m", "t2i_bench"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example plugin installed (pip, no network) into a folder put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("source") / "example_plugin"
    shutil.copytree(PLUGIN, source)  # pip builds in the source folder: keep the repo clean
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    assert list(target.glob("t2i_bench_example_plugin-*.dist-info"))
    return target


def _cli(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    paths = [str(site), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "COLUMNS": "250"}
    return subprocess.run(CLI + args, cwd=cwd, env=env, capture_output=True, text=True)


def test_list_shows_the_plugin(site: Path, tmp_path: Path) -> None:
    metrics = _cli(["list", "metrics"], site, tmp_path)
    assert metrics.returncode == 0, metrics.stderr
    assert "bw_gap" in metrics.stdout and "saturation drop" in metrics.stdout
    backbones = _cli(["list", "backbones"], site, tmp_path)
    assert "saturation" in backbones.stdout and "HSV statistics" in backbones.stdout


def test_a_run_plans_the_variant_and_scores_the_plugin_metric(
    site: Path, concept_dir: Path
) -> None:
    config = write_config(concept_dir)
    text = config.read_text().replace("metrics: [clip_i, clip_t]", "metrics: [clip_i, bw_gap]")
    config.write_text(text.replace("max_per_type: 1", "max_per_type: 1, types: [alter, style]"))
    result = _cli(["run", str(config)], site, concept_dir)
    assert result.returncode == 0, result.stderr
    with open(concept_dir / "out" / "leaderboard.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["checkpoint"] for r in rows] == ["base"]
    gaps = [float(rows[0][f"bw_gap.{t}"]) for t in ("alter", "style")]
    assert all(abs(g) < 1 for g in gaps)  # a saturation difference, in [-1, 1]
    # 2 prompt types x 1 prompt x 2 seeds, plus the black-and-white variant of each
    images = list((concept_dir / "out" / "images").rglob("*.png"))
    assert len(images) == 8


def test_no_core_module_names_a_metric_outside_its_own_module() -> None:
    """Metric names appear only in their plugin modules (and the docs/configs)."""
    from t2i_bench.backbones.base import available_backbones
    from t2i_bench.metrics.base import available_metrics

    metrics = available_metrics()
    roles = {role for cls in metrics.values() for role in cls().roles}
    # a metric may share its name with a backbone or role (pickscore, dino, dreamsim)
    names = set(metrics) - set(available_backbones()) - roles
    core = [
        p
        for p in (REPO / "t2i_bench").rglob("*.py")
        if "plugins" not in p.parts and "demo" not in p.parts
    ]
    for path in core:
        text = path.read_text(encoding="utf-8")
        for name in names:
            assert f'"{name}"' not in text and f"'{name}'" not in text, (path, name)

"""The analysis on a published-style sweep: per category, per level, with honest fit quality.

The synthetic sweep has the shape of the LyCORIS paper's: 21 configurations × 3 training
seeds × 3 epochs, evaluated on 5 concept categories, in the documented long format
(docs/analysis.md), with effects planted so the expected answers are known.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from typer.testing import CliRunner

from t2i_bench.analysis.analyze import run_analysis
from t2i_bench.cli import app
from t2i_bench.errors import BenchError

#: Categories with the sign of their planted epoch and preset effects on clip_i.
FLIPS = {"people": 1.0, "animals": 1.0, "objects": 1.0, "scenes": -1.0, "styles": -1.0}
CONCEPTS = {"people": "alice", "animals": "corgi", "objects": "teapot", "scenes": "castle"}
CONCEPTS["styles"] = "ukiyoe"
#: lora and loha: (preset, lr, dim, alpha); the last one is degenerate (alpha = 1).
SMALL = [
    ("attn", 1e-5, 8, 4),
    ("attn", 1e-4, 16, 8),
    ("attn", 1e-3, 32, 16),
    ("full", 1e-5, 16, 8),
    ("full", 1e-4, 32, 16),
    ("full", 1e-3, 8, 4),
    ("full", 1e-4, 8, 1),
]
#: lokr: (preset, lr, factor); dim is always 10000 (full rank) and alpha 1.
LOKR = [
    ("attn", 1e-5, 4),
    ("attn", 1e-4, 8),
    ("attn", 1e-3, 4),
    ("full", 1e-5, 8),
    ("full", 1e-4, 4),
    ("full", 1e-3, 8),
    ("attn", 1e-4, 4),
]
EPOCHS = (5, 10, 15)
SEEDS = (0, 1, 2)
WHERE = "not (alpha == 1 and algo != 'lokr')"
DIRECTIONS = {"clip_i": True, "clip_t": True, "noise": False}
FAST = {"iterations": 120, "n_boot": 300}


def sweep(rng_seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long metrics table, configs table) of the published-style sweep.

    Planted, per category c with sign f_c (FLIPS): clip_i = 0.6 + 0.03·f_c·(epoch − 10)/5
    + 0.04·f_c·(+1 full, −1 attn) − 0.05·(log10 lr + 4)² (peaked at lr = 1e-4) + noise
    (sd 0.005); the degenerate configurations (alpha = 1, not lokr) collapse to 0.1 ± 0.05.
    clip_t = 0.3 − 0.02·(epoch − 10)/5 + noise. ``noise`` is pure noise.
    """
    rng = np.random.default_rng(rng_seed)
    grid = [("lora", *c, np.nan) for c in SMALL] + [("loha", *c, np.nan) for c in SMALL]
    grid += [("lokr", p, lr, 10000, 1, f) for p, lr, f in LOKR]
    configs, rows = [], []
    for i, (algo, preset, lr, dim, alpha, factor) in enumerate(grid):
        for seed, epoch in itertools.product(SEEDS, EPOCHS):
            name = f"c{i:02d}-{algo}-s{seed}-e{epoch:02d}"
            configs.append(
                {
                    "checkpoint": name,
                    "algo": algo,
                    "preset": preset,
                    "lr": lr,
                    "dim": dim,
                    "alpha": alpha,
                    "factor": factor,
                    "seed": seed,
                    "epoch": epoch,
                }
            )
            degenerate = alpha == 1 and algo != "lokr"
            for category, flip in FLIPS.items():
                concept = CONCEPTS[category]
                fidelity = (
                    0.6
                    + 0.03 * flip * (epoch - 10) / 5
                    + 0.04 * flip * (1 if preset == "full" else -1)
                    - 0.05 * (np.log10(lr) + 4) ** 2
                    + rng.normal(0, 0.005)
                )
                if degenerate:
                    fidelity = 0.1 + rng.normal(0, 0.05)
                text = 0.3 - 0.02 * (epoch - 10) / 5 + rng.normal(0, 0.005)
                for metric, value in (
                    ("clip_i", fidelity),
                    ("clip_t", text),
                    ("noise", rng.normal()),
                ):
                    rows.append((name, concept, category, "trigger", metric, value))
    columns = ["checkpoint", "concept", "category", "prompt_type", "metric", "value"]
    return pd.DataFrame(rows, columns=columns), pd.DataFrame(configs)


@pytest.fixture(scope="module")
def by_category(tmp_path_factory) -> tuple[Path, object]:
    """``--by category --where …`` on the sweep, without plots (they are tested below)."""
    metrics, configs = sweep()
    out = tmp_path_factory.mktemp("by_category")
    result = run_analysis(
        metrics,
        configs,
        out,
        DIRECTIONS,
        targets=["clip_i.trigger", "noise.trigger"],
        by=["category"],
        where=WHERE,
        plots=False,
        **FAST,
    )
    return out, result


def _rows(importance: pd.DataFrame, group: str, target: str, feature: str) -> pd.DataFrame:
    selected = importance["group"].eq(group) & importance["target"].eq(target)
    return importance[selected & importance["feature"].eq(feature)].set_index("level")


def test_per_category_directions_per_level(by_category) -> None:
    out, _ = by_category
    importance = pd.read_csv(out / "importance.csv", keep_default_na=False, na_values=[""])
    for column in ("group", "target", "feature", "level", "importance", "effect", "shape"):
        assert column in importance.columns, column
    for category, flip in FLIPS.items():
        group = f"category={category}"
        preset = _rows(importance, group, "clip_i.trigger", "preset")
        full, attn = preset.loc["full"], preset.loc["attn"]
        # the planted ±0.04 around the middle: full − attn = 0.08 in the flip's direction
        assert flip * (full["effect"] - attn["effect"]) == pytest.approx(0.08, rel=0.2)
        assert flip * full["effect"] > 0 and flip * attn["effect"] < 0
        # the bootstrap interval brackets the effect and excludes zero
        for level in (full, attn):
            assert level["effect_ci_low"] <= level["effect"] <= level["effect_ci_high"]
            assert level["effect_ci_low"] > 0 or level["effect_ci_high"] < 0
            assert level["sign_agreement"] == 1.0
        epoch = _rows(importance, group, "clip_i.trigger", "epoch").iloc[0]
        assert flip * epoch["effect"] > 0.9
        assert epoch["shape"] == ("increasing" if flip > 0 else "decreasing")
        lr = _rows(importance, group, "clip_i.trigger", "log10_lr").iloc[0]
        assert lr["shape"] == "peaked at 0.0001" and lr["shape_at"] == pytest.approx(1e-4)


def test_r2_per_group_and_low_cv_warning(by_category) -> None:
    out, result = by_category
    r2 = pd.read_csv(out / "r2.csv")
    assert list(r2.columns[:6]) == ["group", "target", "r2_train", "r2_cv", "n_rows", "n_configs"]
    groups = ["all", *(f"category={c}" for c in sorted(FLIPS))]
    assert list(dict.fromkeys(r2["group"])) == groups
    fidelity = r2[r2["target"].eq("clip_i.trigger")].set_index("group")
    assert (fidelity["r2_cv"] > 0.5).all() and (fidelity["r2_train"] > 0.95).all()
    # 21 configurations, 2 excluded by --where: 19 × 3 seeds × 3 epochs
    assert (fidelity["n_configs"] == 19).all() and (fidelity["n_rows"] == 171).all()
    noise = r2[r2["target"].eq("noise.trigger")].set_index("group")
    assert (noise["r2_cv"] <= 0.1).all() and not noise["generalises"].any()
    assert (noise["r2_train"] > noise["r2_cv"]).all()  # in-sample R² flatters the fit
    lines = (out / "warnings.txt").read_text().splitlines()
    for group in groups:
        expected = f"[{group}] target 'noise.trigger': cross-validated R²"
        assert any(line.startswith(expected) and "do not generalise" in line for line in lines)
        assert not any(line.startswith(f"[{group}] target 'clip_i.trigger'") for line in lines)
    assert len(result.fit_warnings) == len(groups)
    assert set(result.fit_warnings) <= set(result.warnings)


def test_where_excludes_and_lists_every_checkpoint(by_category) -> None:
    out, result = by_category
    excluded = pd.read_csv(out / "excluded.csv")
    assert len(excluded) == 18 and excluded["checkpoint"].str.match(r"c(06|13)-").all()
    assert (excluded["excluded_by"] == WHERE).all()
    assert any("excluded 18 of 189 checkpoints" in w for w in result.warnings)
    assert result.unmatched == [] and not (out / "unmatched.csv").exists()
    # the leaderboard keeps every checkpoint; the fitted table does not
    assert len(pd.read_csv(out / "leaderboard.csv")) == 189
    fitted = pd.read_csv(out / "checkpoints.csv")
    assert fitted.groupby("group").size().eq(171).all()
    assert not fitted["checkpoint"].isin(excluded["checkpoint"]).any()


def test_dim_constant_within_lokr_is_folded(by_category) -> None:
    out, result = by_category
    confounding = pd.read_csv(out / "confounding.csv")
    dim = confounding[confounding["other"].eq("dim") & confounding["group"].eq("all")].iloc[0]
    assert dim["feature"] == "algo" and dim["kind"] == "nested"
    assert "dim=10000 only with algo=lokr" in dim["detail"]
    assert dim["action"] == "folded into the feature 'algo:dim'"
    features = set(result.results["all"].features)
    assert "dim" not in features and "algo" not in features
    combined = next(f for f in features if f.startswith("algo:dim"))
    importance = pd.read_csv(out / "importance.csv", keep_default_na=False)
    levels = importance.loc[importance["feature"].eq(combined), "level"]
    assert any(level.startswith("lokr:10000") for level in levels)
    assert any("'dim' is confounded with 'algo'" in w for w in result.warnings)


def test_interactions_and_curves(by_category) -> None:
    out, result = by_category
    interactions = pd.read_csv(out / "interactions.csv")
    expected = ["group", "target", "feature_a", "feature_b", "interaction", "rank"]
    assert list(interactions.columns) == expected
    assert set(interactions["group"]) == set(result.results)
    assert interactions.groupby(["group", "target"]).size().max() <= 5
    # one best checkpoint per run, group and target; direction-aware
    curves = result.curves
    assert set(curves["group"]) == set(result.results)
    best = curves[curves["best"]]
    assert best.groupby(["group", "target", "run_id"]).size().eq(1).all()
    assert len(best) == 6 * 2 * 19 * 3
    for (group, target, _), run in curves.groupby(["group", "target", "run_id"]):
        pick = run["value"].idxmin() if target.startswith("noise") else run["value"].idxmax()
        assert run.loc[pick, "best"], (group, target)
    people = best[best["group"].eq("category=people") & best["target"].eq("clip_i.trigger")]
    scenes = best[best["group"].eq("category=scenes") & best["target"].eq("clip_i.trigger")]
    assert people["epoch"].eq(15).mean() > 0.9 and scenes["epoch"].eq(5).mean() > 0.9
    table = pd.read_csv(out / "curves_clip_i.trigger.csv")
    assert len(table) == 6 * 171 and {"group", "run_id", "epoch", "value", "best"} <= set(table)


def test_categorical_level_effects_and_rank_targets(tmp_path: Path) -> None:
    """Rank targets: scaled ranks of the raw means within the group (checked with scipy),
    1 = best, so a lower-is-better metric's effects flip sign."""
    metrics, configs = sweep(rng_seed=1)
    directions = {"clip_i": False, "clip_t": True, "noise": True}
    result = run_analysis(
        metrics,
        configs,
        tmp_path,
        directions,
        targets=["clip_i.trigger"],
        by=["category"],
        where=WHERE,
        normalise="rank",
        curves=False,
        plots=False,
        **FAST,
    )
    fitted = pd.read_csv(tmp_path / "checkpoints.csv")
    people = fitted[fitted["group"].eq("category=people")].set_index("checkpoint")
    raw = metrics[metrics["category"].eq("people") & metrics["metric"].eq("clip_i")]
    raw = raw.set_index("checkpoint")["value"].reindex(people.index)
    expected = (rankdata(-raw.to_numpy()) - 1) / (len(raw) - 1)  # lower is better: rank 1 best
    np.testing.assert_allclose(people["clip_i.trigger"], expected, atol=1e-6)  # %.6g in CSV
    importance = result.results["category=people"].importance
    preset = importance[importance["feature"].eq("preset")].set_index("level")
    # full raises clip_i in people; clip_i is declared lower-is-better, so full ranks worse
    assert preset.loc["full", "effect"] < 0 < preset.loc["attn", "effect"]
    assert preset.loc["full", "effect_ci_high"] < 0
    assert result.results["category=people"].r2["r2_cv"].iloc[0] > 0.5


def test_fold_off_flags_only(tmp_path: Path) -> None:
    metrics, configs = sweep()
    result = run_analysis(
        metrics,
        configs,
        tmp_path,
        DIRECTIONS,
        targets=["clip_i.trigger"],
        where=WHERE,
        fold_confounded=False,
        curves=False,
        plots=False,
        **FAST,
    )
    assert {"algo", "dim", "factor", "alpha"} <= set(result.importance.features)
    confounding = pd.read_csv(tmp_path / "confounding.csv")
    assert (confounding["action"] == "flagged").all()
    assert {"dim", "factor"} <= set(confounding["other"])


def test_bad_where_by_and_unmatched(tmp_path: Path) -> None:
    metrics, configs = sweep()
    args = (metrics, configs, tmp_path / "x", DIRECTIONS)
    with pytest.raises(BenchError, match=r"unknown column 'alhpa' \(columns: checkpoint, algo"):
        run_analysis(*args, where="alhpa == 1")
    with pytest.raises(BenchError, match="invalid expression"):
        run_analysis(*args, where="alpha ==")
    with pytest.raises(BenchError, match="Call is not allowed"):
        run_analysis(*args, where="__import__('os').getcwd() == 1")
    with pytest.raises(BenchError, match="numeric column compared with the text '8'"):
        run_analysis(*args, where="dim == '8'")
    with pytest.raises(BenchError, match="keeps no checkpoint"):
        run_analysis(*args, where="dim > 1e6")
    with pytest.raises(BenchError, match="--by 'colour': not a column"):
        run_analysis(*args, by=["colour"])
    assert not (tmp_path / "x").exists()  # every check comes before any file is written
    ghosts = [f"ghost{i}" for i in range(7)]
    extra = pd.DataFrame(
        [(g, "alice", "people", "trigger", "clip_i", 0.5) for g in ghosts],
        columns=metrics.columns,
    )
    with_ghosts = pd.concat([metrics, extra], ignore_index=True)
    with pytest.raises(BenchError, match=r"7 checkpoint\(s\) .* 'ghost0', .* --on-missing drop"):
        run_analysis(with_ghosts, configs, tmp_path / "y", DIRECTIONS)
    result = run_analysis(
        with_ghosts,
        configs,
        tmp_path / "y",
        DIRECTIONS,
        targets=["clip_i.trigger"],
        on_missing="drop",
        importance=False,
        curves=False,
    )
    assert pd.read_csv(tmp_path / "y" / "unmatched.csv")["checkpoint"].tolist() == ghosts
    assert any(
        "7 checkpoint(s)" in w and "all listed in unmatched.csv" in w for w in result.warnings
    )


def test_cli_tables_end_to_end_writes_only_the_output_folder(tmp_path: Path, monkeypatch) -> None:
    metrics, configs = sweep()
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    configs.to_csv(tmp_path / "configs.csv", index=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "analysis"
    tables = ["analyze", "--table", str(tmp_path / "metrics.csv")]
    tables += ["--configs", str(tmp_path / "configs.csv"), "--out"]
    options = ["--by", "category", "--where", WHERE, "--target", "noise.trigger"]
    result = CliRunner().invoke(app, [*tables, str(out), *options])
    assert result.exit_code == 0, result.output
    assert list(cwd.iterdir()) == []  # no catboost_info/, nothing else
    text = " ".join(result.output.split())
    assert "[category=styles] target 'noise.trigger'" in text and "do not generalise" in text
    importance = pd.read_csv(out / "importance.csv")
    assert set(importance["group"]) == {"all", *(f"category={c}" for c in FLIPS)}
    plots = pd.read_csv(out / "plots.csv", keep_default_na=False)
    assert set(plots["kind"]) == {"summary", "beeswarm", "dependence", "curves"}
    assert (plots["kind"] == "beeswarm").sum() == 6
    for name in [*plots["png"], *plots["csv"]]:
        assert (out / name).is_file(), name
    for name in ("curves_noise.trigger.png", "beeswarm_noise.trigger.category-people.png"):
        assert (out / name).stat().st_size > 10_000, name
    # unknown options and columns: one line, exit code 2, nothing written
    for bad in (["--normalise", "zscore"], ["--where", "alhpa == 1"], ["--by", "colour"]):
        again = CliRunner().invoke(app, [*tables, str(tmp_path / "bad"), *bad])
        assert again.exit_code == 2, again.output
        lines = again.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), again.output
    assert not (tmp_path / "bad").exists()


def test_report_uses_the_run_configs_analysis_section(tmp_path: Path) -> None:
    """write_report passes the config's ``analysis:`` section; a fit that does not
    generalise is an alert at the top of the report."""
    from test_report import synthetic_run

    from t2i_bench.config import AnalysisConfig
    from t2i_bench.report.build import write_report

    run = synthetic_run(tmp_path)
    run.config.analysis = AnalysisConfig(
        by=["algo"], where="not (algo == 'lokr' and lr == 0.003)", r2_cv_threshold=0.9999
    )
    write_report(run)
    analysis = tmp_path / "analysis"
    assert pd.read_csv(analysis / "excluded.csv")["checkpoint"].tolist() == ["zyx-lokr-lr0.003"]
    assert set(pd.read_csv(analysis / "r2.csv")["group"]) == {"all"}
    notes = (analysis / "warnings.txt").read_text()
    assert "[algo=lokr] target 'clip_i.train'" in notes and "no importance analysis" in notes
    assert "excluded 1 of 12 checkpoints" in notes
    html = (tmp_path / "report" / "index.html").read_text()
    alerts = html[: html.index("</section>")]
    assert "[all] target &#39;clip_i.train&#39;: cross-validated R²" in alerts
    assert "do not generalise" in alerts


def test_cli_on_a_run_config_checks_options_first(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config.yaml"
    for bad, message in (
        (["--normalise", "zscore"], "analysis option normalise"),
        (["--where", "alpha =="], "invalid expression"),
    ):
        result = CliRunner().invoke(app, ["analyze", str(missing), *bad])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output


def test_a_run_with_one_checkpoint_is_no_curve() -> None:
    from t2i_bench.analysis.curves import training_curves

    table = pd.DataFrame(
        {
            "checkpoint": ["a1", "a2", "a3", "b1", "c1", "c2"],
            "run_id": ["a", "a", "a", "b", "c", "c"],
            "config_id": ["x", "x", "x", "y", "z", "z"],
            "epoch": [1, 2, 3, 2, 1, 1],  # b: one checkpoint; c: two at the same epoch
            "clip_i.train": [0.1, 0.3, 0.2, 0.5, 0.4, 0.6],
        }
    )
    curves = training_curves(table, ["clip_i.train"], {"clip_i": True})
    assert list(curves["run_id"]) == ["a", "a", "a"]
    assert list(curves["best"]) == [False, True, False]
    single = training_curves(table[table["run_id"].ne("a")], ["clip_i.train"], {"clip_i": True})
    assert single.empty and single.attrs["progress"] == "epoch"

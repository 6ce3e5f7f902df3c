"""Tests for t2i_bench.analysis: aggregation, rank scaling, I/O, CatBoost + SHAP."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pytest

from t2i_bench.analysis.aggregate import (
    across_seeds,
    checkpoint_table,
    leaderboard_table,
    pareto_front,
    summarize,
)
from t2i_bench.analysis.features import build_features, config_groups, grouped_folds
from t2i_bench.analysis.io import (
    attach_configs,
    read_configs_table,
    read_metrics_table,
    write_table,
)
from t2i_bench.analysis.ranking import rank_scale
from t2i_bench.errors import BenchError

FAST = {"iterations": 120}


# --------------------------------------------------------------------------- helpers


def _planted_table(seed: int = 1, noise: float = 0.05, algo_effect: float = 0.5) -> pd.DataFrame:
    """24 configurations (algo × lr × dim) × 3 seeds; metric = 2·log10(lr) + noise.

    A smaller algo offset (loha + ``algo_effect``) makes the expected order complete:
    lr, then algo, then dim, which has no effect at all.
    """
    rng = np.random.default_rng(seed)
    rows = [{"checkpoint": "base", "metric.train": 0.0}]
    grid = itertools.product(["lora", "loha"], [1e-5, 3e-5, 1e-4, 3e-4], [4, 8, 16])
    for i, (algo, lr, dim) in enumerate(grid):
        for s in range(3):
            rows.append(
                {
                    "checkpoint": f"c{i:02d}s{s}",
                    "algo": algo,
                    "lr": lr,
                    "dim": float(dim),
                    "seed": float(s),
                    "config_id": f"cfg{i:02d}",
                    "run_id": f"cfg{i:02d}-s{s}",
                    "metric.train": 2 * np.log10(lr)
                    + algo_effect * (algo == "loha")
                    + rng.normal(0.0, noise),
                }
            )
    return pd.DataFrame(rows)


def _long_tables(n_configs: int = 20, rng_seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long metrics (per image, with gaps) and configs: n_configs × 3 seeds × 3 epochs."""
    rng = np.random.default_rng(rng_seed)
    algos, lrs, dims = ["lora", "loha", "lokr", "full"], [1e-5, 1e-4, 1e-3], [4, 8, 16, 32]
    grid = list(itertools.product(algos, lrs, dims))[:n_configs]
    configs, metrics = [], []
    for i, (algo, lr, dim) in enumerate(grid):
        for s, epoch in itertools.product(range(3), (5, 10, 15)):
            ckpt = f"{algo}-lr{lr:g}-d{dim}-s{s}-e{epoch}"
            configs.append(
                {
                    "checkpoint": ckpt,
                    "algo": algo,
                    "preset": "attn" if dim < 16 else "full",
                    "lr": lr,
                    "dim": dim,
                    "alpha": dim / 2,
                    "epoch": epoch,
                    "seed": s,
                    "config_id": f"cfg{i}",
                    "run_id": f"cfg{i}-s{s}",
                }
            )
            fidelity = 0.5 + 0.1 * np.log10(lr) + 0.01 * epoch
            for pt, metric, image in itertools.product(
                ("trigger", "alter"), ("dino_i", "clip_t"), range(3)
            ):
                value = fidelity if metric == "dino_i" else 0.3 - 0.05 * fidelity
                metrics.append(
                    (ckpt, "olis", "object", pt, metric, value + rng.normal(0, 0.01), image)
                )
    columns = ["checkpoint", "concept", "category", "prompt_type", "metric", "value", "image"]
    frame = pd.DataFrame(metrics, columns=columns)
    frame["value"] = frame["value"].map(lambda v: f"{v:.6f}").astype(object)
    frame.loc[rng.choice(len(frame), 40, replace=False), "value"] = "N/A"
    frame.loc[rng.choice(len(frame), 40, replace=False), "value"] = ""
    frame.loc[frame["checkpoint"].eq(configs[4]["checkpoint"]), "value"] = "NA"
    for pt, metric in itertools.product(("trigger", "alter"), ("dino_i", "clip_t")):
        frame.loc[len(frame)] = ["base", "olis", "object", pt, metric, "0.2", 0]
    return frame, pd.DataFrame(configs)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(123)
    # 1000 independent data sets of 50 values: the coverage estimate has sd ≈ 0.007.
    # (The percentile bootstrap covers slightly under 95% at n = 50, about 94%.)
    n_groups, n_images, true_mean = 1000, 50, 1.5
    values = rng.normal(true_mean, 2.0, size=(n_groups, n_images))
    metrics = pd.DataFrame(
        {
            "checkpoint": np.repeat([f"ck{i:04d}" for i in range(n_groups)], n_images),
            "concept": "c",
            "category": "object",
            "prompt_type": "train",
            "metric": "m",
            "value": values.ravel(),
        }
    )
    summary = summarize(metrics, n_boot=1000, seed=7)
    covered = (summary["ci_low"] <= true_mean) & (true_mean <= summary["ci_high"])
    assert len(summary) == n_groups
    assert 0.92 <= covered.mean() <= 0.98, covered.mean()
    assert (summary["n"] == n_images).all()


def test_summarize_nan_single_value_and_determinism() -> None:
    metrics = pd.DataFrame(
        {
            "checkpoint": ["a"] * 6 + ["b", "c"],
            "concept": "c",
            "category": "object",
            "prompt_type": "train",
            "metric": "m",
            "value": [1.0, np.nan, 3.0, 2.0, 0.5, 3.5, 5.0, np.nan],
        }
    )
    s = summarize(metrics, n_boot=200, seed=0).set_index("checkpoint")
    assert s.loc["a", "mean"] == 2.0 and s.loc["a", "n"] == 5 and s.loc["a", "n_missing"] == 1
    assert s.loc["a", "ci_low"] < 2.0 < s.loc["a", "ci_high"]
    assert s.loc["b", ["ci_low", "mean", "ci_high"]].tolist() == [5.0, 5.0, 5.0]
    assert s.loc["c", "n"] == 0 and np.isnan(s.loc["c", "mean"])
    # Row order does not matter (values are sorted within a group before resampling).
    again = summarize(metrics.iloc[::-1], n_boot=200, seed=0).set_index("checkpoint")
    pd.testing.assert_frame_equal(s, again)
    # A group's interval does not depend on the other rows in the table.
    alone = summarize(metrics[metrics["checkpoint"].eq("a")], n_boot=200, seed=0)
    assert alone["ci_low"].iloc[0] == s.loc["a", "ci_low"]
    other = summarize(metrics, n_boot=200, seed=1).set_index("checkpoint")
    assert other.loc["a", "ci_low"] != s.loc["a", "ci_low"]
    # An empty category is a category of its own; an empty metric name is an error.
    no_category = metrics.assign(category=None)
    assert (summarize(no_category, n_boot=10)["category"] == "uncategorized").all()
    with pytest.raises(BenchError, match="empty 'metric'"):
        summarize(metrics.assign(metric=[None] + ["m"] * 7), n_boot=10)


# --------------------------------------------------------------------------- rank scaling


def test_rank_scale_hand_computed() -> None:
    rows = [
        # clip (higher is better), concept c1: a < c < b
        ("a", "c1", "object", "clip", 0.1),
        ("b", "c1", "object", "clip", 0.3),
        ("c", "c1", "object", "clip", 0.2),
        # concept c2: a and b tie above c
        ("a", "c2", "object", "clip", 0.5),
        ("b", "c2", "object", "clip", 0.5),
        ("c", "c2", "object", "clip", 0.4),
        # a second category with one concept; c has no value
        ("a", "c3", "style", "clip", 1.0),
        ("b", "c3", "style", "clip", 2.0),
        ("c", "c3", "style", "clip", np.nan),
        # fid (lower is better): c1 a best; c2 only a has a value
        ("a", "c1", "object", "fid", 10.0),
        ("b", "c1", "object", "fid", 30.0),
        ("c", "c1", "object", "fid", 20.0),
        ("a", "c2", "object", "fid", 5.0),
        ("b", "c2", "object", "fid", np.nan),
    ]
    summary = pd.DataFrame(rows, columns=["checkpoint", "concept", "category", "metric", "mean"])
    summary["prompt_type"] = "train"
    scores = rank_scale(summary, {"clip": True, "fid": False})
    got = scores.set_index(["metric", "checkpoint"])["rank_score"]
    # clip: object = mean(c1, c2) → a (0 + .75)/2, b (1 + .75)/2, c (.5 + 0)/2;
    # style: a 0, b 1; overall = mean over categories (c has object only).
    assert got[("clip", "a")] == pytest.approx((0.375 + 0.0) / 2)
    assert got[("clip", "b")] == pytest.approx((0.875 + 1.0) / 2)
    assert got[("clip", "c")] == pytest.approx(0.25)
    # fid inverted: c1 a 1, c .5, b 0; c2 a alone → 0.5.
    assert got[("fid", "a")] == pytest.approx(0.75)
    assert got[("fid", "b")] == pytest.approx(0.0)
    assert got[("fid", "c")] == pytest.approx(0.5)
    assert scores.attrs["warnings"] == []
    unknown = rank_scale(summary, {"clip": True})
    assert any("'fid'" in w for w in unknown.attrs["warnings"])


# --------------------------------------------------------------------------- io


def test_read_metrics_table_na_and_missing_column(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(
        "checkpoint,concept,category,prompt_type,metric,value\n"
        "a,olis,object,train,clip_t,0.25\n"
        "a,olis,object,train,clip_t,N/A\n"
        "a,olis,object,train,clip_t,NA\n"
        "a,olis,object,train,clip_t,\n"
        "NA,olis,,alter,clip_t,1e-3\n"
    )
    table = read_metrics_table(path)
    assert table["value"].isna().tolist() == [False, True, True, True, False]
    assert table["value"].iloc[4] == pytest.approx(1e-3)
    assert table["checkpoint"].iloc[4] == "NA"  # names are never read as missing
    assert table["category"].iloc[4] == "uncategorized"

    bad = tmp_path / "no_metric.csv"
    bad.write_text("checkpoint,concept,category,prompt_type,value\na,o,object,train,1\n")
    with pytest.raises(BenchError) as err:
        read_metrics_table(bad)
    message = str(err.value)
    assert "no_metric.csv" in message and "'metric'" in message and "\n" not in message

    text = tmp_path / "text.csv"
    text.write_text("checkpoint,concept,category,prompt_type,metric,value\na,o,x,train,m,high\n")
    with pytest.raises(BenchError, match="not a number.*'high'"):
        read_metrics_table(text)


def test_read_metrics_parquet_and_configs(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "checkpoint": ["a", "b"],
            "concept": "olis",
            "category": "object",
            "prompt_type": "train",
            "metric": "m",
            "value": [1.0, None],
            "image": ["0", "1"],
        }
    )
    frame.to_parquet(tmp_path / "m.parquet")
    table = read_metrics_table(tmp_path / "m.parquet")
    assert table["value"].isna().tolist() == [False, True] and "image" in table.columns

    (tmp_path / "configs.csv").write_text(
        "checkpoint,algo,lr,dim,seed,epoch\na,lora,1e-4,8,0,1\nb,lora,1e-4,8,1,1\nbase,,,,,\n"
    )
    configs = read_configs_table(tmp_path / "configs.csv")
    assert configs["lr"].dtype == np.float64 and np.isnan(configs["dim"].iloc[2])
    assert configs["config_id"].iloc[0] == configs["config_id"].iloc[1]
    assert configs["run_id"].iloc[0] != configs["run_id"].iloc[1]
    assert configs["config_id"].iloc[2] == "base"

    (tmp_path / "dup.csv").write_text("checkpoint,lr\na,1\na,2\n")
    with pytest.raises(BenchError, match="dup.csv.*'a'"):
        read_configs_table(tmp_path / "dup.csv")


def test_attach_configs_missing_checkpoint() -> None:
    frame = pd.DataFrame({"checkpoint": ["a", "ghost", "base"], "x": [1, 2, 3]})
    configs = pd.DataFrame({"checkpoint": ["a"], "lr": [1e-4], "config_id": ["k"]})
    with pytest.raises(BenchError, match="1 checkpoint.*'ghost'"):
        attach_configs(frame, configs)
    warnings: list[str] = []
    joined = attach_configs(frame, configs, on_missing="drop", warnings=warnings)
    assert joined["checkpoint"].tolist() == ["a", "base"] and "ghost" in warnings[0]


# --------------------------------------------------------------------------- tables


def _small_summary() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(5)
    rows = []
    for ckpt, concept, pt, metric, image in itertools.product(
        ["base", "k1", "k2", "k3", "k4"],
        ["c1", "c2"],
        ["train", "alter"],
        ["clip_t", "fid"],
        range(4),
    ):
        rows.append((ckpt, concept, "object", pt, metric, rng.normal(), image))
    metrics = pd.DataFrame(
        rows,
        columns=["checkpoint", "concept", "category", "prompt_type", "metric", "value", "image"],
    )
    configs = pd.DataFrame(
        {
            "checkpoint": ["k1", "k2", "k3", "k4"],
            "algo": ["lora", "lora", "loha", "loha"],
            "lr": [1e-4, 1e-4, 3e-4, 3e-4],
            "seed": [0, 1, 0, 1],
            "config_id": ["A", "A", "B", "B"],
            "file": ["k1.safetensors", "k2.safetensors", "k3.safetensors", "k4.safetensors"],
        }
    )
    return metrics, configs


def test_leaderboard_deterministic_and_base_first(tmp_path) -> None:
    metrics, configs = _small_summary()
    directions = {"clip_t": True, "fid": False}
    first = leaderboard_table(summarize(metrics, n_boot=300), configs, directions)
    shuffled = metrics.sample(frac=1.0, random_state=3)
    second = leaderboard_table(summarize(shuffled, n_boot=300), configs.iloc[::-1], directions)
    write_table(first, tmp_path / "one.csv")
    write_table(second, tmp_path / "two.csv")
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert first["checkpoint"].iloc[0] == "base"
    assert list(first.columns[:8]) == [
        *("checkpoint", "algo", "lr", "seed", "run_id", "config_id", "file", "rank_score")
    ]
    for col in ("clip_t.train", "clip_t.train.ci_low", "clip_t.train.ci_high", "fid.alter"):
        assert col in first.columns
    assert first.columns.get_loc("clip_t.train") < first.columns.get_loc("clip_t.alter")
    ranked = first["rank_score"].iloc[1:].tolist()
    assert ranked == sorted(ranked, reverse=True)
    # Averaged over the two concepts.
    summary = summarize(metrics, n_boot=300)
    k1 = summary.query("checkpoint == 'k1' and metric == 'fid' and prompt_type == 'train'")
    value = first.set_index("checkpoint").loc["k1", "fid.train"]
    assert value == pytest.approx(k1["mean"].mean(), rel=1e-5)


def test_across_seeds_mean_and_std() -> None:
    summary = pd.DataFrame(
        {
            "checkpoint": ["k1", "k2", "k3"],
            "concept": "c",
            "category": "object",
            "prompt_type": "train",
            "metric": "m",
            "mean": [1.0, 3.0, 10.0],
        }
    )
    configs = pd.DataFrame(
        {"checkpoint": ["k1", "k2", "k3"], "lr": [1.0, 1.0, 2.0], "config_id": ["A", "A", "B"]}
    )
    out = across_seeds(summary, configs).set_index("config_id")
    assert out.loc["A", "mean"] == 2.0 and out.loc["A", "std"] == pytest.approx(np.sqrt(2.0))
    assert out.loc["A", "n_seeds"] == 2 and out.loc["A", "checkpoints"] == "k1;k2"
    assert np.isnan(out.loc["B", "std"]) and out.loc["B", "lr"] == 2.0


def test_pareto_front() -> None:
    df = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 3.0, np.nan, 2.0, 0.5], "y": [3.0, 2.0, 1.0, 1.0, 9.0, 2.5, 3.0]},
        index=list("abcdefg"),
    )
    mask = pareto_front(df, "x", "y")
    assert mask.index.tolist() == list("abcdefg")
    assert mask[mask].index.tolist() == ["a", "c", "d", "f"]


# --------------------------------------------------------------------------- features, CV


def test_config_groups_join_epochs_and_seeds() -> None:
    table = pd.DataFrame(
        {
            "config_id": ["A-e1", "A-e2", "A-e1", "B-e1"],
            "run_id": ["A-s0", "A-s0", "A-s1", "B-s0"],
        }
    )
    groups = config_groups(table)
    assert groups[0] == groups[1] == groups[2] != groups[3]
    folds = grouped_folds(np.array([0, 0, 1, 2, 2, 3]), 2, seed=0)
    assert folds[0] == folds[1] and folds[3] == folds[4]


def test_build_features_log_lr_and_constants() -> None:
    table = pd.DataFrame(
        {"algo": ["lora", None, "loha"], "lr": [1e-4, 1e-3, 1e-2], "alpha": [1.0, 1.0, 1.0]}
    )
    fm = build_features(table)
    assert fm.names == ["algo", "log10_lr"] and fm.categorical == ["algo"]
    assert fm.frame["log10_lr"].tolist() == pytest.approx([-4.0, -3.0, -2.0])
    assert fm.frame["algo"].iloc[1] == "(missing)"
    assert any("'alpha'" in w for w in fm.warnings)
    with pytest.raises(BenchError, match="'rank'"):
        build_features(table, features=["rank"])


# --------------------------------------------------------------------------- importance


@pytest.mark.parametrize("algo_effect", [0.5, 0.0])
def test_planted_effect_lr_first_dim_last(algo_effect: float) -> None:
    from t2i_bench.analysis.importance import fit_importance

    table = _planted_table(algo_effect=algo_effect)
    features = ["algo", "lr", "dim"]
    result = fit_importance(table, ["metric.train"], features=features, seed=0, **FAST)
    imp = result.importance.drop_duplicates("feature").set_index("feature")
    assert imp.index[0] == "log10_lr" and imp.loc["log10_lr", "rank"] == 1
    lr = imp.loc["log10_lr"]
    assert lr["sign"] == 1.0 and lr["effect"] > 0.95 and lr["shape"] == "increasing"
    assert lr["sign_agreement"] == 1.0 and lr["level"] == ""  # numeric: no level
    assert imp.loc["dim", "importance"] < 0.02 * imp.loc["log10_lr", "importance"]
    if algo_effect:
        # With both algo and dim irrelevant their order is noise; with algo planted, it is not.
        assert imp.index.tolist() == ["log10_lr", "algo", "dim"]
        levels = result.importance.query("feature == 'algo'").set_index("level")["effect"]
        # loha is planted algo_effect above lora; SHAP splits it around the mean (36 rows each)
        assert levels["loha"] - levels["lora"] == pytest.approx(algo_effect, rel=0.1)
    # SHAP values add up to the model's prediction: in-sample R² from them is r2_train
    fit = result.fits["metric.train"]
    prediction = fit.shap_values.sum(axis=1) + fit.base_value
    r2_from_shap = 1 - ((fit.y - prediction) ** 2).sum() / ((fit.y - fit.y.mean()) ** 2).sum()
    assert r2_from_shap == pytest.approx(fit.r2_train, abs=1e-9)
    r2 = result.r2.iloc[0]
    assert r2["r2_cv"] > 0.8 and r2["n_configs"] == 24 and r2["n_rows"] == 72
    again = fit_importance(table, ["metric.train"], features=features, seed=0, **FAST)
    pd.testing.assert_frame_equal(result.importance, again.importance)


def test_too_few_configurations_message() -> None:
    from t2i_bench.analysis.importance import fit_importance

    table = _planted_table()
    small = table[table["config_id"].isin(["cfg00", "cfg01", "cfg02", "cfg03"])]
    with pytest.raises(BenchError, match="at least 10 configurations.*there are 4 config"):
        fit_importance(small, ["metric.train"], features=["lr", "dim"], **FAST)
    with pytest.raises(BenchError, match="'nope'"):
        fit_importance(table, ["nope"], **FAST)
    # With skip_insufficient, a sparse target is skipped with a warning; a constant one too.
    table["sparse"] = np.where(table["config_id"].isin(["cfg00", "cfg01"]), 1.0, np.nan)
    table["flat"] = 1.0
    targets = ["metric.train", "sparse", "flat"]
    result = fit_importance(table, targets, features=["lr", "dim"], skip_insufficient=True, **FAST)
    assert list(result.fits) == ["metric.train"]
    assert any("'sparse'" in w and "there are 2 configurations" in w for w in result.warnings)
    assert any("'flat' is constant" in w for w in result.warnings)


def test_long_table_to_shap_files(tmp_path) -> None:
    from t2i_bench.analysis.importance import fit_importance
    from t2i_bench.analysis.importance_files import write_importance
    from t2i_bench.analysis.importance_plots import beeswarm_plot

    metrics, configs = _long_tables(n_configs=20)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    configs.to_csv(tmp_path / "configs.csv", index=False)
    long = read_metrics_table(tmp_path / "metrics.csv")
    assert long["value"].isna().sum() >= 80
    cfg = read_configs_table(tmp_path / "configs.csv")
    summary = summarize(long, n_boot=200)
    table = checkpoint_table(summary, cfg)
    assert len(table) == 20 * 3 * 3 + 1
    targets = ["dino_i.trigger", "dino_i.alter", "clip_t.alter"]
    start = time.perf_counter()
    result = fit_importance(table, targets, seed=0, **FAST)
    files = write_importance(result, tmp_path / "analysis")
    elapsed = time.perf_counter() - start
    print(f"SHAP analysis on 20 configs x 3 seeds x 3 epochs: {elapsed:.1f} s")
    out = tmp_path / "analysis"
    assert all(p.exists() for p in files)
    for name in ("importance.csv", "r2.csv", "shap_summary.png", "shap_summary.csv", "plots.csv"):
        assert (out / name).is_file(), name
    for target in targets:
        assert (out / f"beeswarm_{target}.png").is_file()
        assert (out / f"beeswarm_{target}.csv").is_file()
    assert len(list(out.glob("dependence_*.png"))) == len(targets)  # a panel per feature
    importance = pd.read_csv(out / "importance.csv")
    assert set(importance["target"]) == set(targets)
    assert {"algo", "log10_lr", "epoch"} <= set(importance["feature"])
    r2 = pd.read_csv(out / "r2.csv").set_index("target")
    assert (r2["n_configs"] == 20).all() and (r2["n_rows"] < 180).all()
    top = importance[importance["target"].eq("dino_i.trigger")].set_index("feature")
    assert top.loc["log10_lr", "rank"] <= 2
    # Plots are byte-identical when drawn again.
    fit = result.fits["dino_i.trigger"]
    beeswarm_plot(fit, tmp_path / "again", seed=result.seed)
    assert (tmp_path / "again.png").read_bytes() == (
        out / "beeswarm_dino_i.trigger.png"
    ).read_bytes()


def test_run_analysis_writes_everything(tmp_path) -> None:
    from t2i_bench.analysis.analyze import run_analysis

    metrics, configs = _long_tables(n_configs=12, rng_seed=3)
    metrics["value"] = pd.to_numeric(metrics["value"].replace({"N/A": None, "NA": None, "": None}))
    configs = configs.drop(columns=["config_id", "run_id"])  # derived from the hyperparameters
    outputs = run_analysis(metrics, configs, tmp_path, {"dino_i": True}, n_boot=100, iterations=60)
    again = run_analysis(
        metrics.sample(frac=1.0, random_state=0),
        configs,
        tmp_path / "again",
        {"dino_i": True},
        n_boot=100,
        iterations=60,
    )
    # every file, PNGs included, is byte-identical when run again (rows in another order)
    assert [p.name for p in outputs.files] == [p.name for p in again.files]
    for path in outputs.files:
        assert path.read_bytes() == (tmp_path / "again" / path.name).read_bytes(), path.name
    for name in ("summary.csv", "leaderboard.csv", "across_seeds.csv", "rank_scores.csv"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "importance.csv").is_file() and (tmp_path / "shap_summary.png").is_file()
    assert any("'clip_t'" in w for w in outputs.warnings)
    assert outputs.leaderboard["checkpoint"].iloc[0] == "base"
    assert outputs.importance is not None
    assert set(outputs.importance.r2["n_configs"]) == {12}
    seeds = pd.read_csv(tmp_path / "across_seeds.csv")
    assert set(seeds.loc[seeds["config_id"].ne("base"), "n_seeds"]) <= {2, 3}

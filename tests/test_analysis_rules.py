"""The analysis rules one by one: --where, effect shapes, level effects, confounding, config."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import spearmanr

from t2i_bench.analysis.confounding import fold_confounded
from t2i_bench.analysis.effects import (
    effect_shape,
    interaction_pairs,
    level_effects,
    numeric_effect,
    sign_agreement,
)
from t2i_bench.analysis.features import FeatureMatrix
from t2i_bench.analysis.where import evaluate_where
from t2i_bench.config import AnalysisConfig, RunConfig
from t2i_bench.errors import BenchError

# --------------------------------------------------------------------------- --where

CONFIGS = pd.DataFrame(
    {
        "checkpoint": ["a", "b", "c", "d", "base"],
        "algo": ["lora", "lokr", "lora", "loha", None],
        "alpha": [1.0, 1.0, 4.0, 8.0, np.nan],
        "dim": [8.0, 10000.0, 8.0, 16.0, np.nan],
    }
)


@pytest.mark.parametrize(
    ("expression", "kept"),
    [
        ("not (alpha == 1 and algo != 'lokr')", ["b", "c", "d", "base"]),
        ("algo in ['lora', 'loha']", ["a", "c", "d"]),
        ("algo not in ['lora']", ["b", "d"]),  # a missing algo matches no comparison
        ("(dim >= 8) & ~(algo == 'lokr')", ["a", "c", "d"]),
        ("alpha / dim == 0.5", ["c", "d"]),
        ("1 < dim <= 16", ["a", "c", "d"]),
        ("algo == None", ["base"]),
        ("algo != None or alpha > 100", ["a", "b", "c", "d"]),
    ],
)
def test_where_keeps_what_pandas_query_keeps(expression: str, kept: list[str]) -> None:
    mask = evaluate_where(expression, CONFIGS)
    assert CONFIGS.loc[mask, "checkpoint"].tolist() == kept


def test_where_agrees_with_pandas_query_on_complete_rows() -> None:
    """On rows without missing values, the whitelist evaluator and DataFrame.query agree."""
    complete = CONFIGS.dropna()
    for expression in ("not (alpha == 1 and algo != 'lokr')", "dim > 8 or alpha == 4"):
        ours = complete[evaluate_where(expression, complete)]
        pd.testing.assert_frame_equal(ours, complete.query(expression))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("alhpa == 1", "unknown column 'alhpa' (columns: checkpoint, algo, alpha, dim)"),
        ("alpha ==", "invalid expression"),
        ("alpha", "is not a condition"),
        ("dim.real == 8", "Attribute is not allowed"),
        ("open('x') == 1", "Call is not allowed"),
        ("[x for x in dim] == 1", "ListComp is not allowed"),
        ("algo < 3", "a text column compared with the number 3"),
        ("dim == '8'", "a numeric column compared with the text '8'"),
        ("dim in 8", "'in' needs a list"),
        ("alpha > None", "None can only be compared with == or !="),
    ],
)
def test_where_rejects_with_one_line(expression: str, message: str) -> None:
    with pytest.raises(BenchError) as err:
        evaluate_where(expression, CONFIGS)
    assert message in str(err.value) and expression in str(err.value)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- effects


@pytest.mark.parametrize(
    ("means", "shape"),
    [
        ([0.0, 1.0, 2.0, 3.0], "increasing"),
        ([0.0, 1.0, 0.95, 3.0], "increasing"),  # a step back within 10% of the spread
        ([3.0, 2.0, 1.0, 0.0], "decreasing"),
        ([0.0, 2.0, 0.5], "peaked at 20"),
        ([2.0, 0.0, 1.0, 2.5], "dipped at 20"),
        ([0.0, 0.8, 0.2, 1.0], "non-monotone"),
        ([0.0, 0.001, 0.0], "flat"),  # spread 0.001 < 5% of the target's sd (1.0)
    ],
)
def test_effect_shape_rules(means: list[float], shape: str) -> None:
    values = np.repeat(np.arange(len(means)) * 10.0 + 10.0, 5)
    shap = np.repeat(means, 5) + np.tile(np.linspace(-1e-4, 1e-4, 5), len(means))
    assert effect_shape(values, shap, target_sd=1.0)[0] == shape


def test_effect_shape_reports_the_learning_rate_not_its_log() -> None:
    log_lr = np.repeat([-5.0, -4.0, -3.0], 4)
    shap = np.repeat([-1.0, 1.0, -1.0], 4)
    shape, at = effect_shape(log_lr, shap, 1.0, display=lambda v: 10.0**v)
    assert shape == "peaked at 0.0001" and at == pytest.approx(1e-4)


def test_numeric_effect_is_spearman_and_ignores_missing() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    s = np.exp(x) + rng.normal(scale=0.1, size=50)
    x_missing = x.copy()
    x_missing[:5] = np.nan
    assert numeric_effect(x, s) == pytest.approx(spearmanr(x, s).statistic)
    assert numeric_effect(x_missing, s) == pytest.approx(spearmanr(x[5:], s[5:]).statistic)
    assert np.isnan(numeric_effect(np.ones(10), np.arange(10.0)))


def test_level_effects_cluster_bootstrap() -> None:
    rng = np.random.default_rng(1)
    levels = np.array(["a"] * 30 + ["b"] * 30 + ["c"] * 3, dtype=object)
    groups = np.array([i // 3 for i in range(60)] + [99] * 3)  # 10 configs per level, 1 for c
    config_effect = rng.normal(0.5, 0.2, size=20)
    shap = np.concatenate([config_effect[groups[:30]], -config_effect[groups[30:60] - 0]])
    shap = np.concatenate([shap, [0.1, 0.1, 0.1]])
    table = level_effects(levels, shap, groups, n_boot=2000, ci=0.95, seed=0).set_index("level")
    a = table.loc["a"]
    assert a["effect"] == pytest.approx(shap[:30].mean()) and a["n"] == 30 and a["n_configs"] == 10
    # the interval is about the configuration means' spread: ±1.96·sd/√10 around the mean
    config_means = pd.Series(shap[:30]).groupby(groups[:30]).mean()
    half = 1.96 * config_means.std(ddof=0) / np.sqrt(10)
    assert a["ci_low"] == pytest.approx(a["effect"] - half, abs=0.35 * half)
    assert a["ci_high"] == pytest.approx(a["effect"] + half, abs=0.35 * half)
    assert table.loc["b", "effect"] < 0
    assert np.isnan(table.loc["c", "ci_low"]) and table.loc["c", "n_configs"] == 1
    again = level_effects(levels, shap, groups, n_boot=2000, ci=0.95, seed=0)
    pd.testing.assert_frame_equal(table.reset_index(), again)


def test_sign_agreement_and_interaction_pairs() -> None:
    assert sign_agreement(0.3, [0.1, 0.2, -0.1, 0.4]) == 0.75
    assert np.isnan(sign_agreement(0.0, [0.1]))
    phi = np.zeros((4, 3, 3))
    phi[:, 0, 2] = phi[:, 2, 0] = [0.5, -0.5, 0.5, -0.5]  # features a and c interact
    phi[:, 0, 1] = phi[:, 1, 0] = 0.1
    pairs = interaction_pairs(phi, ["a", "b", "c"])
    assert pairs[["feature_a", "feature_b"]].iloc[0].tolist() == ["a", "c"]
    assert pairs["interaction"].tolist() == pytest.approx([1.0, 0.2, 0.0])


def test_planted_interaction_ranks_first() -> None:
    from t2i_bench.analysis.importance import fit_importance

    rng = np.random.default_rng(3)
    rows = []
    for i, (algo, epoch, dim) in enumerate(itertools.product(["lora", "lokr"], [1, 2, 3], [4, 8])):
        for seed in range(3):
            value = (1.0 if algo == "lokr" else -1.0) * epoch + rng.normal(0, 0.05)
            rows.append(
                dict(checkpoint=f"k{i}s{seed}", algo=algo, epoch=float(epoch), dim=float(dim))
                | dict(config_id=f"c{i}-{seed}", m=value)
            )
    result = fit_importance(pd.DataFrame(rows), ["m"], cv_folds=3, iterations=120)
    top = result.interactions.iloc[0]
    assert {top["feature_a"], top["feature_b"]} == {"algo", "epoch"} and top["rank"] == 1
    assert result.interactions["group"].eq("all").all()


# --------------------------------------------------------------------------- confounding


def _matrix(frame: pd.DataFrame, categorical: list[str]) -> FeatureMatrix:
    return FeatureMatrix(frame=frame, categorical=categorical)


def test_constant_within_a_level_is_folded_into_a_combined_feature() -> None:
    frame = pd.DataFrame(
        {
            "algo": ["lora", "lora", "loha", "loha", "lokr", "lokr"],
            "dim": [8.0, 16.0, 8.0, 16.0, 10000.0, 10000.0],
            "epoch": [1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
        }
    )
    folded = fold_confounded(_matrix(frame, ["algo"]))
    assert folded.matrix.names == ["algo:dim", "epoch"]
    assert folded.matrix.categorical == ["algo:dim"]
    assert folded.matrix.frame["algo:dim"].tolist()[::2] == ["lora:8", "loha:8", "lokr:10000"]
    (finding,) = folded.confounds
    assert (finding.feature, finding.other, finding.kind) == ("algo", "dim", "nested")
    assert finding.detail == "dim=10000 only with algo=lokr"
    assert "folded into the feature 'algo:dim'" in finding.message()
    flagged = fold_confounded(_matrix(frame, ["algo"]), fold=False)
    assert flagged.matrix.names == ["algo", "dim", "epoch"]
    assert [c.action for c in flagged.confounds] == ["flagged"]


def test_missing_by_level_and_perfect_rank_correlation() -> None:
    frame = pd.DataFrame(
        {
            "algo": ["lora", "lora", "lokr", "lokr", "loha", "loha"],
            "factor": [np.nan, np.nan, 4.0, 8.0, np.nan, np.nan],
            "epoch": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
            "step": [100.0, 200.0, 300.0, 100.0, 200.0, 300.0],
        }
    )
    folded = fold_confounded(_matrix(frame, ["algo"]))
    assert folded.matrix.names == ["algo:factor", "epoch"]
    assert "lokr:4" in set(folded.matrix.frame["algo:factor"])
    kinds = {(c.feature, c.other): c for c in folded.confounds}
    assert "factor is missing exactly at algo=loha, algo=lora" in kinds[("algo", "factor")].detail
    assert kinds[("epoch", "step")].kind == "correlated"
    assert folded.aliases == {"epoch": ["step"]}


def test_a_crossed_design_is_not_confounded() -> None:
    grid = list(itertools.product(["lora", "lokr"], ["attn", "full"], [4.0, 8.0], [1.0, 2.0]))
    frame = pd.DataFrame(grid, columns=["algo", "preset", "dim", "epoch"])
    folded = fold_confounded(_matrix(frame, ["algo", "preset"]))
    assert folded.confounds == [] and folded.matrix.names == list(frame.columns)


# --------------------------------------------------------------------------- config


def test_analysis_config_section() -> None:
    config = RunConfig.model_validate(
        {
            "concepts": ["c.yaml"],
            "analysis": {"by": ["category"], "where": "lr > 1e-4", "normalise": "rank"},
        }
    )
    assert config.analysis.by == ["category"] and config.analysis.fold_confounded
    assert RunConfig.model_validate({"concepts": ["c.yaml"]}).analysis == AnalysisConfig()
    with pytest.raises(ValidationError, match="invalid expression"):
        AnalysisConfig(where="lr >")
    with pytest.raises(ValidationError, match="Call is not allowed"):
        AnalysisConfig(where="print(1) == 1")
    with pytest.raises(ValidationError):
        AnalysisConfig(normalise="zscore")
    with pytest.raises(ValidationError):
        AnalysisConfig(by_category=True)  # unknown field

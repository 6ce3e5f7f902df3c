"""Which checkpoint should I use: best per axis, paired-bootstrap significance against the
base model and the runner-up, and the Pareto set over the axes, on planted data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from t2i_bench.analysis.aggregate import summarize
from t2i_bench.analysis.bootstrap import GROUP_REPLICATES, resample_plan
from t2i_bench.analysis.choice import choose_checkpoints, pareto_set, summary_lines
from t2i_bench.analysis.ranking import rank_scale

PROMPTS = [f"prompt {i}" for i in range(10)]
SEEDS = [0, 1, 2]


def per_image(checkpoint: str, metric: str, prompt_type: str, values: np.ndarray) -> pd.DataFrame:
    cells = list(itertools.product(PROMPTS, SEEDS))
    return pd.DataFrame(
        {
            "checkpoint": checkpoint,
            "concept": "zyx",
            "category": "object",
            "prompt_type": prompt_type,
            "metric": metric,
            "value": values,
            "image": [f"images/{checkpoint}/{p}-{s}.png" for p, s in cells],
            "prompt": [p for p, _ in cells],
            "seed": [str(s) for _, s in cells],
        }
    )


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, dict]:
    """Fidelity (``fid_like``, per image, higher is better): strong and strong2 differ by a
    hair, both far above base and weak. Prompt effects are large and shared by every
    checkpoint, so only a paired comparison sees the checkpoints' differences.
    Controllability (``ctrl``, a set metric, lower is better) with stored replicates."""
    rng = np.random.default_rng(0)
    prompt_effect = np.repeat(rng.normal(0, 1.0, len(PROMPTS)), len(SEEDS))
    noise = lambda: rng.normal(0, 0.02, len(prompt_effect))  # noqa: E731
    shift = {"base": 0.0, "weak": 0.05, "strong": 0.3, "strong2": 0.301}
    frames = [
        per_image(c, "fid_like", "trigger", prompt_effect + d + noise()) for c, d in shift.items()
    ]
    ctrl = {"base": 0.2, "weak": 0.1, "strong": 0.5, "strong2": 0.52}
    replicates = {}
    for name, value in ctrl.items():
        frames.append(
            pd.DataFrame(
                [
                    {
                        "checkpoint": name,
                        "concept": "zyx",
                        "category": "object",
                        "prompt_type": "alter",
                        "metric": "ctrl",
                        "value": value,
                        "image": "",
                        "prompt": "",
                        "seed": "",
                    }
                ]
            )
        )
        replicates[("ctrl", name, "zyx", "alter")] = value + rng.normal(0, 0.01, GROUP_REPLICATES)
    return pd.concat(frames, ignore_index=True), replicates


AXES = {"fid_like": "fidelity", "ctrl": "controllability"}
HIGHER = {"fid_like": True, "ctrl": False}


def test_best_per_axis_and_paired_significance(planted) -> None:
    metrics, replicates = planted
    choice = choose_checkpoints(metrics, AXES, HIGHER, replicates)
    table = choice.table.set_index("axis")
    fidelity = table.loc["fidelity"]
    assert {fidelity["best"], fidelity["runner_up"]} == {"strong", "strong2"}
    assert not fidelity["better_than_runner_up"]  # a hair apart
    assert fidelity["better_than_base"]  # 0.3 above, prompt effects cancel in pairs
    control = table.loc["controllability"]
    assert control["best"] == "weak"  # lower is better
    assert control["better_than_base"] and control["better_than_runner_up"]
    # unpaired intervals of strong vs base overlap: only the paired test separates them
    summary = summarize(metrics).set_index(["checkpoint", "metric"])
    strong, base = summary.loc[("strong", "fid_like")], summary.loc[("base", "fid_like")]
    assert strong["ci_low"] < base["ci_high"]
    lines = summary_lines(choice.table, choice.scores)
    best, runner_up = fidelity["best"], fidelity["runner_up"]
    assert (
        lines[1].split()
        == (
            f"fidelity {best} (1.00); beats base; not clearly better than runner-up {runner_up} "
            "(0.67)"
        ).split()
    )


def test_axis_scores_are_the_rank_scores_of_the_axis(planted) -> None:
    metrics, replicates = planted
    scores = choose_checkpoints(metrics, AXES, HIGHER, replicates).scores.set_index("checkpoint")
    ranks = rank_scale(summarize(metrics), HIGHER).set_index(["checkpoint", "metric"])
    for name in scores.index:
        assert scores.loc[name, "axis_fidelity"] == pytest.approx(
            ranks.loc[(name, "fid_like"), "rank_score"]
        )
        assert scores.loc[name, "axis_controllability"] == pytest.approx(
            ranks.loc[(name, "ctrl"), "rank_score"]
        )
    assert "fidelity" in (scores.loc["strong", "best_for"], scores.loc["strong2", "best_for"])
    assert scores.loc["weak", "best_for"] == "controllability"
    assert bool(scores.loc["strong", "axis_fidelity.vs_base"])
    assert pd.isna(scores.loc["base", "axis_fidelity.vs_base"])


def test_replicates_are_paired_by_prompt_and_seed(planted) -> None:
    """Shuffling one checkpoint's rows changes nothing: draws follow the (prompt, seed) cells."""
    metrics, replicates = planted
    shuffled = metrics.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a = choose_checkpoints(metrics, AXES, HIGHER, replicates).table
    b = choose_checkpoints(shuffled, AXES, HIGHER, replicates).table
    pd.testing.assert_frame_equal(a, b)
    plan = resample_plan(PROMPTS * 3, [0] * 10 + [1] * 10 + [2] * 10, key=("zyx", "trigger"))
    assert plan.weights.shape == (GROUP_REPLICATES, 30)


def test_missing_replicates_are_a_warning(planted) -> None:
    metrics, _ = planted
    choice = choose_checkpoints(metrics, AXES, HIGHER, {})
    assert any("4 set value(s) have no bootstrap replicates" in w for w in choice.warnings)


def test_pareto_set_against_brute_force() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, (40, 3)).astype(float)
    scores[7, 1] = np.nan
    mask = pareto_set(scores)
    for i in range(40):
        if np.isnan(scores[i]).any():
            assert not mask[i]
            continue
        dominated = any(
            np.all(scores[j] >= scores[i]) and np.any(scores[j] > scores[i])
            for j in range(40)
            if j != i and not np.isnan(scores[j]).any()
        )
        assert mask[i] == (not dominated)

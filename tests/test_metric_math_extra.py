"""CMMD, bleed, copy detection, the variance breakdown and the metric-agreement matrix,
each against an independent computation or planted data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from t2i_bench.metrics import functional as F
from t2i_bench.metrics.agreement import agreement_matrix, square, write_agreement_csv
from t2i_bench.metrics.variance import (
    balanced_array,
    mean_squares,
    variance_components,
    variance_table,
    write_variance_csv,
)

# ------------------------------------------------------------------------------------ CMMD


def _mmd_by_definition(x: np.ndarray, y: np.ndarray, sigma: float, unbiased: bool) -> float:
    """Gretton et al. 2012: MMD² from the kernel's expectations, with scipy's distances."""
    k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2))  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    if unbiased:
        n, m = len(x), len(y)
        exx = sum(kxx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        eyy = sum(kyy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    else:
        exx, eyy = kxx.mean(), kyy.mean()
    return exx + eyy - 2 * kxy.mean()


def test_cmmd_matches_the_definition_on_random_embeddings() -> None:
    rng = np.random.default_rng(0)
    gen, ref = rng.normal(size=(23, 48)), rng.normal(0.3, 1.0, size=(17, 48))
    g = gen / np.linalg.norm(gen, axis=1, keepdims=True)
    r = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    for unbiased in (False, True):
        expected = 1000.0 * _mmd_by_definition(g, r, 10.0, unbiased)
        assert F.cmmd(gen, ref, biased=not unbiased) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # unnormalised features: rbf_mmd2 takes them as they are
    raw = 1000.0 * _mmd_by_definition(gen, ref, 10.0, False)
    assert F.rbf_mmd2(gen, ref) == pytest.approx(raw, rel=1e-9)


def test_cmmd_known_values() -> None:
    """Closed forms: identical sets give 0 (V-statistic); n copies of a vs n copies of an
    orthogonal b give 1000·2·(1 − exp(−‖a−b‖²/2σ²)) = 2000·(1 − e^−0.01) = 19.900332..."""
    e = np.eye(4)
    assert F.cmmd(e, e) == pytest.approx(0.0, abs=1e-12)
    a, b = np.tile(e[0], (5, 1)), np.tile(e[1] * 3.0, (7, 1))  # b normalised by cmmd
    assert F.cmmd(a, b) == pytest.approx(2000.0 * (1.0 - math.exp(-0.01)), rel=1e-12)
    assert F.cmmd(a, b) == pytest.approx(19.900332500, abs=1e-8)
    with pytest.raises(ValueError, match="dims"):
        F.cmmd(e, np.eye(3))


# ------------------------------------------------------------------------------ bleed


def test_bleed_planted() -> None:
    rng = np.random.default_rng(1)
    concept = np.zeros(32)
    concept[0] = 1.0
    refs = concept + 0.1 * rng.normal(size=(6, 32))
    base = rng.normal(size=(10, 32))
    np.testing.assert_allclose(F.bleed(base, base, refs), 0.0, atol=1e-12)
    leaky = base + 3.0 * concept  # the concept leaks into every image
    values = F.bleed(leaky, base, refs)
    assert (values > 0.2).all()
    # per pair, by definition (brute force)
    for i in range(10):
        own = np.mean([F.paired_cosine(leaky[i : i + 1], r)[0] for r in refs])
        ref_base = np.mean([F.paired_cosine(base[i : i + 1], r)[0] for r in refs])
        assert values[i] == pytest.approx(own - ref_base, abs=1e-12)


def test_mean_similarity_to_refs_is_mean_pairwise_cosine() -> None:
    rng = np.random.default_rng(2)
    g, r = rng.normal(size=(5, 8)), rng.normal(size=(4, 8))
    per_image = F.mean_similarity_to_refs(g, r)
    assert per_image.mean() == pytest.approx(F.mean_pairwise_cosine(g, r), abs=1e-12)
    np.testing.assert_allclose(per_image, F.cosine_matrix(g, r).mean(axis=1), atol=1e-12)


# ---------------------------------------------------------------------- copy detection


def test_copy_detection_planted() -> None:
    rng = np.random.default_rng(3)
    refs = np.eye(6)[:5] + 0.05 * np.abs(rng.normal(size=(5, 6)))  # near-orthogonal, >= 0
    gen = np.stack(
        [
            refs[2],  # an exact copy
            refs[4] + 0.01 * rng.normal(size=6),  # a near copy
            -refs[0],  # far from every reference
            -refs.sum(axis=0),
        ]
    )
    result = F.copy_detection(gen, refs)
    # threshold = the smallest leave-one-out nearest-reference distance, by brute force
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    loo = [min(1 - cos(refs[i], refs[j]) for j in range(5) if j != i) for i in range(5)]
    assert result.threshold == pytest.approx(min(loo), abs=1e-12)
    np.testing.assert_allclose(result.reference_nn, loo, atol=1e-12)
    assert result.is_copy.tolist() == [True, True, False, False]
    assert result.rate == 0.5
    assert result.nearest[:2].tolist() == [2, 4]
    assert result.distance[0] == pytest.approx(0.0, abs=1e-12)
    # a looser calibration (the median) flags at least as many
    assert F.copy_detection(gen, refs, quantile=0.5).rate >= result.rate
    with pytest.raises(ValueError, match="2 reference"):
        F.copy_detection(gen, refs[:1])


# ------------------------------------------------------------------ variance breakdown


def _dummies(labels: np.ndarray) -> np.ndarray:
    levels = np.unique(labels)
    return (labels[:, None] == levels[None, :]).astype(float)


def test_sums_of_squares_match_a_least_squares_fit() -> None:
    """Each term's sum of squares is the drop in residual SS when its dummy columns join an
    OLS fit (sequential; order-free in a balanced design), via numpy's lstsq."""
    rng = np.random.default_rng(4)
    c, p, s = 3, 4, 5
    y = rng.normal(size=(c, p, s)) + rng.normal(size=(c, 1, 1)) + rng.normal(size=(1, p, 1))
    ci, pi, si = np.meshgrid(np.arange(c), np.arange(p), np.arange(s), indexing="ij")
    ci, pi, si = ci.ravel(), pi.ravel(), si.ravel()
    blocks = {
        "checkpoint": _dummies(ci),
        "prompt": _dummies(pi),
        "seed": _dummies(pi * 100 + si),
        "checkpoint_prompt": _dummies(ci * 100 + pi),
    }
    target = y.ravel()

    def rss(cols: list[np.ndarray]) -> float:
        x = np.column_stack([np.ones(len(target)), *cols])
        beta = np.linalg.lstsq(x, target, rcond=None)[0]
        return float(((target - x @ beta) ** 2).sum())

    ours = mean_squares(y)
    used: list[np.ndarray] = []
    previous = rss(used)
    for name, block in blocks.items():
        used.append(block)
        now = rss(used)
        assert ours[name][0] == pytest.approx(previous - now, rel=1e-9), name
        previous = now
    assert ours["residual"][0] == pytest.approx(previous, rel=1e-9)
    assert sum(df for _, df in ours.values()) == c * p * s - 1


def test_variance_components_recover_planted_values() -> None:
    rng = np.random.default_rng(5)
    c, p, s = 40, 40, 12
    planted = {"checkpoint": 4.0, "prompt": 2.0, "seed": 1.0, "checkpoint_prompt": 0.5}
    planted["residual"] = 0.25
    y = (
        rng.normal(0, 2.0, (c, 1, 1))
        + rng.normal(0, math.sqrt(2.0), (1, p, 1))
        + rng.normal(0, 1.0, (1, p, s))
        + rng.normal(0, math.sqrt(0.5), (c, p, 1))
        + rng.normal(0, 0.5, (c, p, s))
    )
    comp = variance_components(y)
    # standard errors here are ~22% (40 levels) for checkpoint/prompt, a few % for the rest
    for name, value in planted.items():
        tol = 0.5 if name in ("checkpoint", "prompt") else 0.1
        assert getattr(comp, name) == pytest.approx(value, rel=tol), name
    assert sum(comp.shares().values()) == pytest.approx(1.0)


def test_seeds_needed_meets_the_half_width() -> None:
    from t2i_bench.metrics.variance import VarianceBreakdown

    comp = VarianceBreakdown(1.0, 1.0, 1.0, 0.01, 0.5, 4, 10, 2)
    needed = comp.seeds_needed(0.2)
    assert needed is not None
    assert comp.half_width(10, needed) <= 0.2 < comp.half_width(10, needed - 1)
    # the checkpoint×prompt term alone exceeds it: no number of seeds helps
    assert comp.seeds_needed(0.05) is None


def test_variance_table_and_balanced_subset(tmp_path) -> None:
    rng = np.random.default_rng(6)
    rows = []
    for ckpt in ("a", "b", "c"):
        for prompt in ("p1", "p2", "p3"):
            for seed in range(4):
                value = {"a": 0.0, "b": 1.0, "c": 2.0}[ckpt] + rng.normal(0, 0.3)
                rows.append(("m", "zyx", "trigger", ckpt, prompt, seed, value))
    scores = pd.DataFrame(
        rows, columns=["metric", "concept", "prompt_type", "checkpoint", "prompt", "seed", "value"]
    )
    unbalanced = scores.drop(index=[0, 5])  # checkpoint a lost (p1, 0) and (p2, 1)
    arr, dropped = balanced_array(unbalanced)
    assert arr.shape == (3, 3, 3) and dropped == len(unbalanced) - 27
    table = variance_table(scores)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["share_checkpoint"] > 0.8  # the planted checkpoint effect dominates
    assert row["seeds_needed"] >= 1 and row["n_seeds"] == 4
    path = write_variance_csv(table, tmp_path / "variance.csv")
    assert pd.read_csv(path).shape == table.shape


# ------------------------------------------------------------------- agreement matrix


def test_agreement_matches_pandas_spearman_and_orients(tmp_path) -> None:
    rng = np.random.default_rng(7)
    ckpts = [f"c{i}" for i in range(8)]
    quality = rng.normal(size=8)
    rows = []
    for ptype in ("trigger", "alter"):
        for i, ckpt in enumerate(ckpts):
            for _image in range(3):  # per-image values, averaged per checkpoint
                noise = rng.normal(0, 0.01)
                rows += [
                    ("fid", ckpt, ptype, -quality[i] + noise),  # lower is better
                    ("dino", ckpt, ptype, quality[i] + noise),
                    ("clip_t", ckpt, ptype, rng.normal()),
                ]
    scores = pd.DataFrame(rows, columns=["metric", "checkpoint", "prompt_type", "value"])
    table = agreement_matrix(scores, {"fid": False, "dino": True, "clip_t": True})
    means = scores.groupby(["prompt_type", "checkpoint", "metric"])["value"].mean().unstack()
    for ptype in ("trigger", "alter"):
        expected = means.loc[ptype].corr(method="spearman")
        mat = square(table, ptype, "rho")
        np.testing.assert_allclose(mat.loc[expected.index, expected.columns], expected, atol=1e-12)
    pair = table[(table.metric_a == "dino") & (table.metric_b == "fid")].iloc[0]
    assert pair["rho"] == pytest.approx(-1.0) and pair["agreement"] == pytest.approx(1.0)
    assert pair["n_checkpoints"] == 8
    path = write_agreement_csv(table, tmp_path / "agreement.csv")
    assert pd.read_csv(path).shape == table.shape


def test_agreement_needs_three_checkpoints() -> None:
    scores = pd.DataFrame(
        [("a", "c1", "t", 1.0), ("b", "c1", "t", 2.0), ("a", "c2", "t", 2.0), ("b", "c2", "t", 1)],
        columns=["metric", "checkpoint", "prompt_type", "value"],
    )
    assert np.isnan(agreement_matrix(scores)["rho"]).all()


def test_single_prompt_breakdown_matches_two_way_anova() -> None:
    """One prompt: checkpoint × seed. The checkpoint and seed components from the two-way
    random-effects EMS, with sums of squares checked by an lstsq fit."""
    rng = np.random.default_rng(8)
    c, s = 80, 80
    y = (
        rng.normal(0, 1.5, (c, 1, 1))
        + rng.normal(0, 1.0, (1, 1, s))
        + rng.normal(0, 0.5, (c, 1, s))
    )
    comp = variance_components(y)
    assert math.isnan(comp.prompt) and math.isnan(comp.checkpoint_prompt)
    assert comp.checkpoint == pytest.approx(2.25, rel=0.5)
    assert comp.seed == pytest.approx(1.0, rel=0.5)
    assert comp.residual == pytest.approx(0.25, rel=0.1)
    ci, si = np.meshgrid(np.arange(c), np.arange(s), indexing="ij")
    target = y.ravel()

    def rss(cols: list[np.ndarray]) -> float:
        x = np.column_stack([np.ones(len(target)), *cols])
        return float(((target - x @ np.linalg.lstsq(x, target, rcond=None)[0]) ** 2).sum())

    full = rss([_dummies(ci.ravel()), _dummies(si.ravel())])
    assert comp.residual == pytest.approx(full / ((c - 1) * (s - 1)), rel=1e-9)
    shares = comp.shares()
    assert math.isnan(shares["prompt"])
    assert sum(v for v in shares.values() if not math.isnan(v)) == pytest.approx(1.0)
    needed = comp.seeds_needed(0.3)
    assert comp.half_width(1, needed) <= 0.3 < comp.half_width(1, needed - 1)

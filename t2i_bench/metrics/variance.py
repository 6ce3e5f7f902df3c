"""Where does a per-image metric's variance come from, and how many images are enough?

Every checkpoint renders the same prompts with the same seeds, so a per-image value
y[c, p, s] (checkpoint c, prompt p, the s-th seed of that prompt) is a fully crossed design
with seeds nested in prompts and shared across checkpoints. The random-effects model

    y[c,p,s] = μ + C[c] + P[p] + S[p,s] + CP[c,p] + E[c,p,s]

splits the variance into checkpoint (C), prompt (P), seed (S: a seed's effect within its
prompt, the same for every checkpoint), checkpoint×prompt (CP) and residual (E: how one
checkpoint's image for one seed departs from all that, i.e. checkpoint×seed noise).

Estimator: the ANOVA method of moments for a balanced design (expected mean squares, all
factors random), negative estimates truncated at 0:

    E[MS_E]  = σ²_E                       σ²_E  = MS_E
    E[MS_CP] = σ²_E + S·σ²_CP             σ²_CP = (MS_CP − MS_E) / S
    E[MS_S]  = σ²_E + C·σ²_S              σ²_S  = (MS_S − MS_E) / C
    E[MS_P]  = σ²_E + S·σ²_CP + C·σ²_S + C·S·σ²_P
                                          σ²_P  = (MS_P − MS_CP − MS_S + MS_E) / (C·S)
    E[MS_C]  = σ²_E + S·σ²_CP + P·S·σ²_C  σ²_C  = (MS_C − MS_CP) / (P·S)

Comparing two checkpoints on the same P prompts and S seeds per prompt, the prompt and seed
effects cancel, so Var(difference of means) = 2·(σ²_CP/P + σ²_E/(P·S)) and the seeds per
prompt needed for a CI half-width h at level 1−α are S = ⌈2·z²·σ²_E / (P·h² − 2·z²·σ²_CP)⌉
(none when P·h² ≤ 2·z²·σ²_CP: then only more prompts help).

With a single prompt (typically the trigger prompt type) the design is checkpoint × seed:
σ²_E = MS_E, σ²_S = (MS_S − MS_E)/C, σ²_C = (MS_C − MS_E)/S; the prompt and checkpoint×prompt
components are not defined (NaN) and the comparison is about that prompt alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COMPONENTS = ("checkpoint", "prompt", "seed", "checkpoint_prompt", "residual")


@dataclass(frozen=True)
class VarianceBreakdown:
    """Variance components of one per-image metric (see the module docstring)."""

    checkpoint: float
    prompt: float
    seed: float
    checkpoint_prompt: float
    residual: float
    n_checkpoints: int
    n_prompts: int
    n_seeds: int

    @property
    def total(self) -> float:
        return sum(v for v in (getattr(self, name) for name in COMPONENTS) if not math.isnan(v))

    def _cp(self) -> float:  # undefined with one prompt: nothing to add to the comparison
        return 0.0 if math.isnan(self.checkpoint_prompt) else self.checkpoint_prompt

    def shares(self) -> dict[str, float]:
        total = self.total
        return {name: (getattr(self, name) / total if total > 0 else 0.0) for name in COMPONENTS}

    def half_width(self, n_prompts: int, n_seeds: int, level: float = 0.95) -> float:
        """CI half-width of the difference between two checkpoints' means over ``n_prompts``
        prompts × ``n_seeds`` seeds (normal approximation)."""
        z = float(_normal_quantile(0.5 + level / 2))
        var = 2.0 * (self._cp() / n_prompts + self.residual / (n_prompts * n_seeds))
        return z * math.sqrt(var)

    def seeds_needed(
        self, half_width: float, n_prompts: int | None = None, level: float = 0.95
    ) -> int | None:
        """Images per prompt so that the CI of a difference between two checkpoints is at most
        ``half_width`` wide on each side; None when no number of seeds reaches it."""
        if half_width <= 0:
            raise ValueError(f"half_width must be positive, got {half_width}")
        p = self.n_prompts if n_prompts is None else n_prompts
        z2 = float(_normal_quantile(0.5 + level / 2)) ** 2
        room = p * half_width**2 - 2.0 * z2 * self._cp()
        if room <= 0:
            return None
        return max(1, math.ceil(2.0 * z2 * self.residual / room))


def mean_squares(y: np.ndarray) -> dict[str, tuple[float, int]]:
    """ANOVA sums of squares and degrees of freedom of a balanced (C, P, S) array:
    term -> (sum of squares, df) for checkpoint, prompt, seed (within prompt),
    checkpoint_prompt and residual."""
    c, p, s = y.shape
    grand = y.mean()
    m_c, m_p = y.mean(axis=(1, 2)), y.mean(axis=(0, 2))
    m_cp, m_ps = y.mean(axis=2), y.mean(axis=0)
    ss = {
        "checkpoint": (p * s * float(((m_c - grand) ** 2).sum()), c - 1),
        "prompt": (c * s * float(((m_p - grand) ** 2).sum()), p - 1),
        "seed": (c * float(((m_ps - m_p[:, None]) ** 2).sum()), p * (s - 1)),
        "checkpoint_prompt": (
            s * float(((m_cp - m_c[:, None] - m_p[None, :] + grand) ** 2).sum()),
            (c - 1) * (p - 1),
        ),
    }
    resid = y - m_cp[:, :, None] - m_ps[None, :, :] + m_p[None, :, None]
    ss["residual"] = (float((resid**2).sum()), (c - 1) * p * (s - 1))
    return ss


def variance_components(y: np.ndarray) -> VarianceBreakdown:
    """Variance components of a balanced array ``y[checkpoint, prompt, seed]`` (float64)."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[2] < 2 or arr.shape[1] < 1:
        raise ValueError(
            f"the variance breakdown needs >= 2 checkpoints and seeds per prompt, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("the variance breakdown needs finite values")
    c, p, s = arr.shape
    pos = lambda v: max(0.0, float(v))  # noqa: E731
    if p == 1:
        ss = mean_squares(arr)
        ms = {k: v[0] / v[1] for k, v in ss.items() if v[1] > 0}
        # with one prompt the "checkpoint_prompt" sum of squares is 0 with 0 df and the
        # residual is the checkpoint × seed interaction
        return VarianceBreakdown(
            checkpoint=pos((ms["checkpoint"] - ms["residual"]) / s),
            prompt=math.nan,
            seed=pos((ms["seed"] - ms["residual"]) / c),
            checkpoint_prompt=math.nan,
            residual=pos(ms["residual"]),
            n_checkpoints=c,
            n_prompts=1,
            n_seeds=s,
        )
    ms = {k: v[0] / v[1] for k, v in mean_squares(arr).items()}
    return VarianceBreakdown(
        checkpoint=pos((ms["checkpoint"] - ms["checkpoint_prompt"]) / (p * s)),
        prompt=pos(
            (ms["prompt"] - ms["checkpoint_prompt"] - ms["seed"] + ms["residual"]) / (c * s)
        ),
        seed=pos((ms["seed"] - ms["residual"]) / c),
        checkpoint_prompt=pos((ms["checkpoint_prompt"] - ms["residual"]) / s),
        residual=pos(ms["residual"]),
        n_checkpoints=c,
        n_prompts=p,
        n_seeds=s,
    )


def balanced_array(values: pd.DataFrame) -> tuple[np.ndarray, int]:
    """A (checkpoint, prompt, seed) array from rows with columns checkpoint, prompt, seed,
    value, keeping the largest balanced part: the (prompt, seed) cells every checkpoint has,
    and per prompt the same number of seeds (its lowest seeds). Returns (array, rows dropped).
    """
    need = {"checkpoint", "prompt", "seed", "value"}
    if missing := need - set(values.columns):
        raise ValueError(f"variance breakdown: missing columns {sorted(missing)}")
    df = values.groupby(["checkpoint", "prompt", "seed"], sort=True)["value"].mean().reset_index()
    n_ckpt = df["checkpoint"].nunique()
    cells = df.groupby(["prompt", "seed"])["checkpoint"].nunique()
    common = cells[cells == n_ckpt].reset_index()[["prompt", "seed"]]
    if common.empty:
        raise ValueError("variance breakdown: no (prompt, seed) is rendered by every checkpoint")
    per_prompt = common.groupby("prompt")["seed"].apply(sorted)
    n_seeds = int(per_prompt.map(len).min())
    keep = {(p, sd) for p, seeds in per_prompt.items() for sd in seeds[:n_seeds]}
    mask = [(p, sd) in keep for p, sd in zip(df["prompt"], df["seed"], strict=True)]
    kept = df[mask].copy()
    kept["rank"] = kept.groupby(["checkpoint", "prompt"])["seed"].rank(method="first") - 1
    cube = kept.pivot_table(
        index="checkpoint", columns=["prompt", "rank"], values="value", sort=True
    )
    arr = cube.to_numpy().reshape(n_ckpt, len(per_prompt), n_seeds)
    return arr, len(values) - len(kept)


def variance_table(
    scores: pd.DataFrame,
    half_width: float | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """The variance breakdown of every per-image metric, per (metric, concept, prompt type).

    ``scores`` has columns metric, concept, prompt_type, checkpoint, prompt, seed, value (one
    row per image). ``half_width``: the CI half-width wanted for a difference between two
    checkpoints; default: each metric's own between-checkpoint standard deviation √σ²_C
    ("enough images to tell typical checkpoints apart"). Groups with fewer than 2 checkpoints
    or seeds per prompt are left out.
    """
    rows = []
    keys = ["metric", "concept", "prompt_type"]
    for (metric, concept, ptype), part in scores.groupby(keys, sort=True):
        try:
            arr, dropped = balanced_array(part)
            comp = variance_components(arr)
        except ValueError:
            continue
        target = half_width if half_width is not None else math.sqrt(comp.checkpoint)
        needed = comp.seeds_needed(target, level=level) if target > 0 else None
        record = {"metric": metric, "concept": concept, "prompt_type": ptype, **asdict(comp)}
        record |= {f"share_{k}": v for k, v in comp.shares().items()}
        record |= {
            "half_width_now": comp.half_width(comp.n_prompts, comp.n_seeds, level),
            "half_width_target": target,
            "seeds_needed": needed,
            "level": level,
            "rows_dropped": dropped,
        }
        rows.append(record)
    return pd.DataFrame(rows)


def write_variance_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write :func:`variance_table`'s output (atomically: temp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.10g")
    tmp.replace(path)
    return path


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (scipy.stats imported here: ~0.4 s, only when needed)."""
    from scipy.stats import norm

    return float(norm.ppf(p))

"""Write the importance tables and SHAP plots of one or more analysis groups."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from t2i_bench.analysis.importance import POOLED, ImportanceResult
from t2i_bench.analysis.io import write_table

PLOT_INDEX_COLUMNS = ["kind", "group", "target", "feature", "png", "csv"]


def write_importance(
    results: ImportanceResult | Sequence[ImportanceResult],
    out_dir: str | Path,
    *,
    plots: bool = True,
) -> list[Path]:
    """Write ``importance.csv``, ``r2.csv``, ``interactions.csv``, ``confounding.csv``, the
    SHAP plots with their CSVs and ``plots.csv`` (their index); return the paths."""
    out = Path(out_dir)
    paths, index = importance_files(results, out, plots=plots)
    return [*paths, write_table(index, out / "plots.csv")]


def importance_files(
    results: ImportanceResult | Sequence[ImportanceResult],
    out: Path,
    *,
    plots: bool = True,
) -> tuple[list[Path], pd.DataFrame]:
    """Everything :func:`write_importance` writes but ``plots.csv``, and that index."""
    from t2i_bench.analysis import importance_plots as draw

    results = [results] if isinstance(results, ImportanceResult) else list(results)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "importance.csv": [r.importance for r in results],
        "r2.csv": [r.r2 for r in results],
        "interactions.csv": [r.interactions for r in results],
        "confounding.csv": [r.confounding for r in results],
    }
    written = [write_table(_concat(frames), out / name) for name, frames in tables.items()]
    manifest: list[tuple] = []
    if plots:
        suffixes = group_suffixes([r.group for r in results])
        for result in results:
            suffix = suffixes[result.group]
            row = ("summary", result.group, "", "")
            manifest.append((*row, *draw.summary_plot(result, out / f"shap_summary{suffix}")))
            slugs = unique_slugs(result.fits)
            importance = result.importance
            for target, fit in result.fits.items():
                stem = out / f"beeswarm_{slugs[target]}{suffix}"
                files = draw.beeswarm_plot(fit, stem, seed=result.seed)
                manifest.append(("beeswarm", result.group, target, "", *files))
                rows = importance[importance["target"].eq(target)]
                stem = out / f"dependence_{slugs[target]}{suffix}"
                files = draw.dependence_plot(fit, rows, stem)
                manifest.append(("dependence", result.group, target, "", *files))
    index = pd.DataFrame(manifest, columns=PLOT_INDEX_COLUMNS)
    for col in ("png", "csv"):
        written.extend(out / name for name in index[col])
    return written, index


def group_suffixes(groups: Sequence[str]) -> dict[str, str]:
    """File-name suffix per group: none for ``all``, ``.category-people`` for the others."""
    slugs = unique_slugs([g for g in groups if g != POOLED])
    return {g: "" if g == POOLED else f".{slugs[g]}" for g in groups}


def slug(name: str) -> str:
    """A file-name-safe form of a target or group name."""
    text = name.replace("=", "-")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "target"


def unique_slugs(names: Sequence[str]) -> dict[str, str]:
    """A distinct slug per name (``-2``, ``-3``… on collisions)."""
    slugs: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        candidate, n = slug(name), 2
        while candidate in used:
            candidate, n = f"{slug(name)}-{n}", n + 1
        used.add(candidate)
        slugs[name] = candidate
    return slugs


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)

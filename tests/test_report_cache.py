"""The report memo: only what changed is recomputed and redrawn, and a report built from the
cache is the report built from scratch."""

from __future__ import annotations

import functools
import importlib
import inspect
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import synthetic_run

from t2i_bench.report import build
from t2i_bench.report import cache as report_cache
from t2i_bench.report.build import write_report
from t2i_bench.report.cache import ReportMemo, data_hash, memoised

SMALL = {"algos": ("lora", "loha", "lokr"), "lrs": (1e-4, 1e-3, 3e-3)}  # CatBoost runs


def outputs(root: Path) -> dict[str, bytes]:
    """Every file the report stage wrote (the memo's own folder aside)."""
    skip = ("images/", "report-cache/", "run.sqlite")
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(skip)
    }


@pytest.fixture()
def calls(monkeypatch) -> dict[str, list]:
    """Counts analyses (CatBoost fits) and the report's plot draws."""
    seen: dict[str, list] = {"analysis": [], "plots": []}
    for name, kind in (("analyze", "analysis"), ("metric_ci_plot", "plots")):
        monkeypatch.setattr(build, name, _counted(getattr(build, name), seen[kind]))
    monkeypatch.setattr(build, "tradeoff_plot", _counted(build.tradeoff_plot, seen["plots"]))
    return seen


def _counted(fn, log: list):
    """``fn`` logging each call (the stem's name for plots); the memo sees ``fn`` itself
    (same module, name and signature)."""

    @functools.wraps(fn)
    def counted(*args, **kwargs):
        log.append(Path(args[-1]).name if "stem" in inspect.signature(fn).parameters else fn)
        return fn(*args, **kwargs)

    return counted


def test_data_hash_is_exact_and_typed() -> None:
    frame = pd.DataFrame({"a": [0.1, 0.2], "b": ["x", "y"]})
    assert data_hash(frame) == data_hash(frame.copy())
    changed = frame.copy()
    changed.loc[1, "a"] = np.nextafter(0.2, 1.0)  # one ulp
    assert data_hash(changed) != data_hash(frame)
    assert data_hash(pd.DataFrame({"a": [1]}, dtype=object)) != data_hash(
        pd.DataFrame({"a": ["1"]}, dtype=object)
    )
    assert data_hash(frame[["b", "a"]]) != data_hash(frame)
    assert data_hash(frame.rename(columns={"a": "c"})) != data_hash(frame)
    assert data_hash({"x": [1, 2]}) == data_hash({"x": [1, 2]}) != data_hash({"x": [2, 1]})
    with pytest.raises(TypeError):
        data_hash(object())


def _plot_module(folder: Path, body: str):
    """A plot function in a package of its own (its source is part of the key)."""
    package = folder / "memo_plots"
    package.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(package / "__pycache__", ignore_errors=True)  # an edit within the second
    (package / "__init__.py").write_text("")
    (package / "draw.py").write_text(
        "from pathlib import Path\n"
        "CALLS = []\n"
        "def plot(frame, title, stem):\n"
        "    CALLS.append(title)\n"
        f"    stem.with_suffix('.png').write_bytes({body})\n"
        "    frame.to_csv(stem.with_suffix('.csv'))\n"
        "    return stem.with_suffix('.png')\n"
    )
    sys.path.insert(0, str(folder))
    try:
        for name in ("memo_plots.draw", "memo_plots"):
            sys.modules.pop(name, None)
        report_cache._package_sources.cache_clear()
        return importlib.import_module("memo_plots.draw")
    finally:
        sys.path.remove(str(folder))


def test_plot_is_drawn_only_when_its_data_code_or_files_change(tmp_path: Path) -> None:
    module = _plot_module(tmp_path / "code", "(title * 3).encode()")
    run = tmp_path / "run"
    stem = run / "plots" / "p"
    stem.parent.mkdir(parents=True)
    frame = pd.DataFrame({"x": [1.0, 2.0]})

    def report(data: pd.DataFrame, title: str = "t") -> Path:
        with ReportMemo(run) as memo:
            path = memoised(module.plot)(data, title, stem)
            memo.sweep(run / "plots")
        return path

    assert report(frame) == stem.with_suffix(".png") and module.CALLS == ["t"]
    assert report(frame.copy()) == stem.with_suffix(".png") and module.CALLS == ["t"]
    assert {p.name for p in stem.parent.iterdir()} == {"p.png", "p.csv"}  # kept, not swept
    report(frame.assign(x=[1.0, 3.0]))  # new data
    assert module.CALLS == ["t", "t"]
    report(frame.assign(x=[1.0, 3.0]), "u")  # another argument
    assert module.CALLS == ["t", "t", "u"]
    stem.with_suffix(".png").write_bytes(b"altered")  # a damaged output is redrawn
    report(frame.assign(x=[1.0, 3.0]), "u")
    assert module.CALLS == ["t", "t", "u", "u"] and stem.with_suffix(".png").read_bytes() == b"uuu"
    stem.with_suffix(".csv").unlink()  # so is a missing one
    report(frame.assign(x=[1.0, 3.0]), "u")
    assert len(module.CALLS) == 5
    edited = _plot_module(tmp_path / "code", "(title * 4).encode()")  # the code changed
    module = edited
    report(frame.assign(x=[1.0, 3.0]), "u")
    assert module.CALLS == ["u"] and stem.with_suffix(".png").read_bytes() == b"uuuu"
    with ReportMemo(run) as memo:  # nothing claims the plot: it is removed
        memo.sweep(run / "plots")
    assert list(stem.parent.iterdir()) == []
    assert module.plot(frame, "plain", stem) == stem.with_suffix(".png")  # no memo: a call


def test_second_report_recomputes_nothing(tmp_path: Path, calls: dict[str, list]) -> None:
    run = synthetic_run(tmp_path, **SMALL)
    write_report(run)
    assert len(calls["analysis"]) == 1
    assert sorted(calls["plots"]) == ["ci_clip_i", "ci_clip_t", "tradeoff"]
    first = outputs(tmp_path)
    write_report(run)
    assert len(calls["analysis"]) == 1 and len(calls["plots"]) == 3  # nothing recomputed
    assert outputs(tmp_path) == first
    (tmp_path / "analysis" / "shap_summary.png").unlink()  # a lost analysis file: refit
    write_report(run)
    assert len(calls["analysis"]) == 2 and outputs(tmp_path) == first


def _change_clip_t(run) -> None:
    """New clip_t values for one checkpoint, too small to change its rank (clip_i and the
    leaderboard order untouched)."""
    rows = run.store.scores_frame()
    clip_t = rows[rows["metric"].eq("clip_t") & rows["checkpoint"].eq("zyx-lora-lr0.001")]
    assert len(clip_t)
    for prompt_type, part in clip_t.groupby("prompt_type"):
        values = {k: v + 1e-7 for k, v in zip(part["item"], part["value"], strict=True)}
        run.store.put_scores("clip_t", "zyx-lora-lr0.001", "zyx", prompt_type, "t2", values)


def test_changed_data_gives_the_report_built_from_scratch(
    tmp_path: Path, calls: dict[str, list]
) -> None:
    cached = synthetic_run(tmp_path / "cached", **SMALL)
    write_report(cached)
    _change_clip_t(cached)
    drawn = len(calls["plots"])
    write_report(cached)
    assert len(calls["analysis"]) == 2  # the tables changed: refitted
    # only the plot whose data changed is redrawn (clip_t's intervals; the tradeoff plot's
    # means and clip_i's plot are the same)
    assert calls["plots"][drawn:] == ["ci_clip_t"]
    scratch = synthetic_run(tmp_path / "scratch", **SMALL)
    _change_clip_t(scratch)
    write_report(scratch)
    ours, fresh = outputs(tmp_path / "cached"), outputs(tmp_path / "scratch")
    assert ours.keys() == fresh.keys()
    for name in ours:
        if name != "report/index.html":  # names its own folder (the provenance's config hash)
            assert ours[name] == fresh[name], name


def test_metric_dropped_removes_its_plot(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path, **SMALL)
    write_report(run)
    assert (tmp_path / "report" / "plots" / "ci_clip_t.png").is_file()
    run.store.delete_scores(k for k in run.store.score_identities() if k[0] == "clip_t")
    run.metrics = run.metrics[:1]
    write_report(run)
    plots = {p.name for p in (tmp_path / "report" / "plots").iterdir()}
    assert not {"ci_clip_t.png", "ci_clip_t.csv"} & plots
    scratch = synthetic_run(tmp_path / "scratch", **SMALL)
    scratch.store.delete_scores(k for k in scratch.store.score_identities() if k[0] == "clip_t")
    scratch.metrics = scratch.metrics[:1]
    write_report(scratch)
    assert plots == {p.name for p in (tmp_path / "scratch" / "report" / "plots").iterdir()}
    assert {"ci_clip_i.png", "ci_clip_i.csv"} <= plots


def test_a_table_that_does_not_round_trip_is_not_cached(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Result:
        table: pd.DataFrame
        note: str

    mixed = pd.DataFrame({"v": [1, "a", 2.5]}, dtype=object)  # parquet cannot hold it exactly
    plain = pd.DataFrame({"v": [1.0, 2.0]})
    computed = []

    def compute(table):
        def run() -> Result:
            computed.append(1)
            (tmp_path / "out").mkdir(exist_ok=True)
            (tmp_path / "out" / "f.txt").write_text("x")
            return Result(table, "n")

        return run

    for table, expected in ((plain, [1]), (mixed, [1, 1])):
        computed.clear()
        for _ in range(2):
            with ReportMemo(tmp_path) as memo:
                result = memo.call(
                    "thing",
                    table,
                    compute(table),
                    code=(write_report,),
                    outputs=tmp_path / "out",
                    returns=Result,
                )
            pd.testing.assert_frame_equal(result.table, table)
            assert result.note == "n"
        assert computed == expected

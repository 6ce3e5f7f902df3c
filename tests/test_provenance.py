"""Provenance: a run folder written under different value-changing package versions warns."""

from __future__ import annotations

from t2i_bench.provenance import VALUE_PACKAGES, extend_history, provenance, version_drift


def _record(**versions: str) -> dict:
    packages = {name: "1.0" for name in VALUE_PACKAGES} | versions
    return {"packages": {"t2i-bench": "0.1.0", **packages}}


def test_same_versions_keep_one_entry_and_no_warning() -> None:
    history = extend_history([], _record())
    history = extend_history(history, _record())
    assert len(history) == 1 and version_drift(history) == []


def test_a_changed_value_package_is_named_with_both_versions() -> None:
    history = extend_history([], _record())
    history = extend_history(history, _record(torch="2.14.1", diffusers="0.42.1"))
    warnings = version_drift(history)
    assert len(warnings) == 2
    assert warnings[0].startswith("torch changed between runs on this folder (1.0 -> 2.14.1)")
    assert "diffusers" in warnings[1] and "--output" in warnings[1]


def test_a_package_that_cannot_change_values_is_not_tracked() -> None:
    first = extend_history([], _record())
    assert extend_history(first, {"packages": {"t2i-bench": "9.9", **first[0]}}) == first


def test_the_record_holds_versions_revision_and_config_hash() -> None:
    record = provenance({"name": "x"})
    assert set(record) == {"packages", "git_revision", "python", "platform", "config_hash"}
    assert (
        record["packages"]["torch"]
        and record["config_hash"] != provenance({"name": "y"})["config_hash"]
    )


def test_the_report_shows_version_drift(tmp_path) -> None:
    from test_report import synthetic_run

    from t2i_bench.report.build import write_report

    run = synthetic_run(tmp_path)
    history = extend_history(extend_history([], _record()), _record(torch="2.14.1"))
    run.store.set_meta("provenance_history", history)
    write_report(run)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "torch changed between runs on this folder (1.0 -&gt; 2.14.1)" in page

"""The report on a damaged run folder, and CSV cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import pandas as pd
from adapter_files import write_lycoris_file
from conftest import REPO, write_config
from typer.testing import CliRunner

from t2i_bench.analysis.io import (
    FORMULA_STARTS,
    csv_cell,
    read_configs_table,
    read_metrics_table,
    restore_cell,
)
from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.store import RunStore

NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def test_report_with_missing_and_altered_images(concept_dir: Path) -> None:
    config = write_config(concept_dir)
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(config)]).exit_code == 0
    out = concept_dir / "out"
    board = (out / "leaderboard.csv").read_bytes()
    store = RunStore(out)
    rows = store.image_rows()
    store.close()
    keys = sorted(rows)
    for key in keys[:2]:
        (out / rows[key][0]).unlink()
    (out / rows[keys[2]][0]).write_bytes(b"\x89PNG not really")  # altered (and unreadable)
    for thumb in (out / "report" / "thumbs").glob("*.png"):
        thumb.unlink()  # so the report would have to read every image again

    result = runner.invoke(app, ["report", str(config)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Traceback" not in result.output
    warnings = [ln for ln in result.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1
    assert f"{out / 'images'}: 3 of {len(rows)} images are missing or altered" in text
    assert "`t2i-bench run` restores them" in text
    assert (out / "leaderboard.csv").read_bytes() == board  # values are kept
    page = (out / "report" / "index.html").read_text()
    for key in keys[:3]:
        assert key not in page
    assert keys[3] in page

    again = runner.invoke(app, ["run", str(config)])
    assert again.exit_code == 0 and "rendered 3 images" in again.output
    assert (out / "leaderboard.csv").read_bytes() == board


def test_csv_cells_never_start_a_formula(concept_dir: Path, tmp_path: Path) -> None:
    adapter = concept_dir / "=1+2.safetensors"
    write_lycoris_file(load_base_pipeline("tiny", 0), adapter, seed=7)
    prompts = tmp_path / "p.yaml"
    text = (REPO / "prompts" / "default.yaml").read_text()
    prompts.write_text(text.replace('"{} in a chef', '"=cmd|{} in a chef'))
    extra = (
        f"checkpoints: [{{path: '{adapter}', "
        "hyperparameters: {algo: '@SUM(A1)', offset: -0.5, note: '-x'}}]\n"
        f"prompts: {{set: {prompts}, max_per_type: 1}}\n"
    )
    config = write_config(concept_dir, extra)
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    out = concept_dir / "out"
    files = sorted(out.rglob("*.csv"))
    assert {"leaderboard.csv", "metrics.csv", "checkpoints.csv"} <= {f.name for f in files}
    assert any("plots" in f.parts for f in files) and any("analysis" in f.parts for f in files)
    seen_quoted = set()
    negative_numbers = 0
    for path in files:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    if cell[:1] in FORMULA_STARTS:
                        assert NUMBER.fullmatch(cell), (path, cell)
                        negative_numbers += cell.startswith("-")
                    if cell.startswith("'"):
                        seen_quoted.add(cell)
    assert {"'=1+2", "'@SUM(A1)", "'-x"} <= seen_quoted
    assert any(c.startswith("'=cmd|zyx toy") for c in seen_quoted)
    assert negative_numbers > 0  # -0.5 and negative scores stay numbers
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.loc[board["checkpoint"].eq("'=1+2"), "offset"].item() == -0.5
    # the project's own readers take the quote off: names match across tables
    configs = read_configs_table(out / "checkpoints.csv")
    assert "=1+2" in set(configs["checkpoint"]) and "@SUM(A1)" in set(configs["algo"])
    metrics = read_metrics_table(out / "metrics.csv")
    assert metrics["prompt"].str.startswith("=cmd|zyx toy").any()
    page = (out / "report" / "index.html").read_text()
    assert "=1+2" in page and "&#39;=1+2" not in page and "'=1+2" not in page


def test_csv_cell_round_trips() -> None:
    rng = random.Random(0)
    alphabet = "=+-@'\t\r ab1.e"
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        written = csv_cell(value)
        assert restore_cell(written) == value
        if written[:1] in FORMULA_STARTS:
            assert NUMBER.fullmatch(written)
    for number in ("-0.5", "+1", "-1e-05", "-.5", "3"):
        assert csv_cell(number) == number

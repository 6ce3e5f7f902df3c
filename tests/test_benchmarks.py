"""The performance harness runs end to end: ``python -m benchmarks --quick --only …`` appends a
result table whose rows carry positive ratios. Performance targets are not asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmarks_append_a_table(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks", "--quick", "--only", "generation"]
    command += ["--only", "switching", "--results", str(results), "--workdir", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    text = results.read_text()
    assert "`python -m benchmarks --quick --only generation --only switching" in text
    assert "- machine: " in text and "- git revision " in text
    for name in ("generation", "switching"):
        row = re.search(rf"^\| {name}: [^|]+\|[^|]+\|[^|]+\| ([0-9.]+) \|", text, re.MULTILINE)
        assert row, f"no {name} row in:\n{text}"
        assert float(row.group(1)) > 0

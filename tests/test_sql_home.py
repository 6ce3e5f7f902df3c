"""store.py is the only home of SQL: no other module of the package or the harness runs a
query or holds one (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQL = re.compile(
    r"\.execute(many|script)?\(|\b(SELECT\s+\S+.*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|"
    r"DELETE\s+FROM|CREATE\s+TABLE|ALTER\s+TABLE|UPDATE\s+\w+\s+SET)\b"
)


def test_no_sql_outside_store() -> None:
    found = []
    for folder in ("t2i_bench", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "t2i_bench" / "store.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if SQL.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_pattern_sees_a_query() -> None:  # the check above can fail
    assert SQL.search('rows = conn.execute("SELECT key FROM images")')
    assert SQL.search('"INSERT OR REPLACE INTO scores VALUES (?)"')
    assert not SQL.search("select the best checkpoint from the table")

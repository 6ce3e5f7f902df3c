"""What every comparison shares: the run context, timing, result rows and the results file."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Context:
    """Options of one ``python -m benchmarks`` invocation and caches shared by comparisons."""

    workdir: Path
    quick: bool = False
    threads: int = 1
    selected: tuple[str, ...] = ()  # the comparisons this invocation runs
    budget: float = 900.0  # seconds the whole command should stay under
    started: float = field(default_factory=time.perf_counter)
    cache: dict[str, Any] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def rounds(self, full: int) -> int:
        """Timed rounds: ``full``, 1 with ``--quick`` or once past 55% of the time budget
        (a heavily loaded machine), so the command stays within its budget."""
        late = time.perf_counter() - self.started > 0.55 * self.budget
        return 1 if self.quick or late else full

    def memo(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per invocation (workloads and measurements shared by comparisons)."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]


class Skipped(Exception):
    """Raised by a comparison that cannot run on this machine (e.g. no GPU); its message
    says why and is recorded with the results."""


@dataclass
class Row:
    """One comparison's outcome: both measurements, their ratio and the target."""

    name: str
    title: str
    ours: float
    baseline: float
    unit: str  # of ``ours`` and ``baseline``: "s", "img/s", "MiB"
    ratio: float
    ratio_kind: str  # what the ratio divides, e.g. "time t2i-bench / per-metric"
    op: str  # "<=" or ">="
    target: float
    notes: str = ""

    @property
    def met(self) -> bool:
        return self.ratio <= self.target if self.op == "<=" else self.ratio >= self.target


@dataclass
class Clock:
    """Wall time (``time.perf_counter``) and this process's CPU time (``time.process_time``):
    the second hardly moves when other processes load the machine."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Clock) -> Clock:
        return Clock(self.wall + other.wall, self.cpu + other.cpu)


@contextmanager
def clock() -> Iterator[Clock]:
    """``with clock() as c: …`` fills ``c.wall`` and ``c.cpu`` when the block ends."""
    result = Clock()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        result.wall = time.perf_counter() - wall
        result.cpu = time.process_time() - cpu


def best(clocks: list[Clock]) -> Clock:
    """The smallest wall time and the smallest CPU time of several rounds."""
    return Clock(min(c.wall for c in clocks), min(c.cpu for c in clocks))


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[Clock, Any]]:
    """Each callable timed ``repeats`` times, run A B A B … so that load from other processes
    hits both sides alike; values are (best clock, last result)."""
    clocks: dict[str, list[Clock]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            with clock() as c:
                results[name] = fn()
            clocks[name].append(c)
    return {name: (best(clocks[name]), results[name]) for name in fns}


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def git_revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    try:
        rev = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "t2i_bench")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' (t2i_bench/ modified)' if dirty else ''}" if rev else "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_info() -> dict[str, str]:
    """CPU model, cores and RAM (from /proc), versions and the git revision."""
    packages = ("torch", "diffusers", "transformers", "open_clip_torch", "torchmetrics", "ray")
    return {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores, {_ram_gib():.1f} GiB RAM",
        "python": platform.python_version(),
        "packages": ", ".join(f"{p} {_version(p)}" for p in packages),
        "git": git_revision(),
    }


# --------------------------------------------------------------------------- output


def _num(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.2f} {unit}"


def format_table(rows: list[Row]) -> str:
    """The rows as a markdown table (one line per comparison)."""
    head = (
        "| comparison | t2i-bench | baseline | ratio | ratio is | target | met | notes |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        cells = [
            f"{r.name}: {r.title}",
            _num(r.ours, r.unit),
            _num(r.baseline, r.unit),
            f"{r.ratio:.3f}",
            r.ratio_kind,
            f"{r.op} {r.target:g}",
            "yes" if r.met else "**no**",
            r.notes.replace("|", "/").replace("\n", " "),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_entry(
    rows: list[Row], command: str, mode: str, wall: float, load: tuple[str, str], extra: list[str]
) -> str:
    """A dated markdown section: machine, versions, command, the table and notes."""
    info = machine_info()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {stamp}: `{command}`",
        "",
        f"- machine: {info['cpu']}; load average {load[0]} at start, {load[1]} at end",
        f"- python {info['python']}; {info['packages']}",
        f"- git revision {info['git']}",
        f"- mode {mode}; wall time of the whole command {wall:.0f} s",
        *[f"- {line}" for line in extra],
        "",
        format_table(rows),
        "",
    ]
    return "\n".join(lines)


def append_results(path: Path, entry: str) -> None:
    """Append ``entry`` to the results file (created with a title if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(
            "# Benchmark results\n\nAppended by `python -m benchmarks`; newest last. "
            "See `benchmarks/README.md` for what each row measures.\n\n"
        )
    with path.open("a", encoding="utf-8") as handle:
        handle.write(entry + "\n")


def command_line() -> str:
    return " ".join(["python -m benchmarks", *sys.argv[1:]])

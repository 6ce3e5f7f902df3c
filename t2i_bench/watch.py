"""``t2i-bench run CONFIG --watch``: evaluate each checkpoint a trainer writes, as soon as it
is completely written.

The files and folders the config's checkpoint globs match are polled. One is *complete* when
it parses in full (a ``.safetensors`` file's header covers exactly its bytes; a torch zip
archive's entries check out; a folder holds the files its format needs, each complete) and
nothing in it has changed for one poll interval (sizes and modification times). Only complete
checkpoints enter the run (:func:`only_complete` rewrites the globs into their complete
files), so a half-written file is never loaded. Each time new ones are complete the run is
planned again on the same store, lock, executor and loaded models: only the new images,
embeddings, values and the changed report outputs are computed.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from t2i_bench.config import RunConfig
from t2i_bench.errors import BenchError
from t2i_bench.prompt_types import AXES

Fingerprint = tuple[tuple[str, int, int], ...]  # (relative name, size, mtime_ns) per file
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def fingerprint(path: Path, allow_pickle: bool = False) -> Fingerprint:
    """Sizes and modification times of a file; of a folder, those of the files its format
    reads (optimizer or random states written after them do not count), or of every file
    below it while its format is not recognisable yet."""
    if path.is_file():
        stat = path.stat()
        return (("", stat.st_size, stat.st_mtime_ns),)
    from t2i_bench.generation.formats import checkpoint_files, detect_format

    try:
        detect_format(path, allow_pickle)
        items = checkpoint_files(path)
    except (BenchError, OSError):
        items = list(path.rglob("*"))
    found = []
    for item in sorted(items):
        try:
            stat = item.stat()
        except FileNotFoundError:  # removed while we looked (a trainer's temporary file)
            continue
        if item.is_file():
            found.append((item.relative_to(path).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def incomplete(path: Path, allow_pickle: bool = False) -> str | None:
    """Why ``path`` is not a complete checkpoint yet, or None when it is."""
    from t2i_bench.generation.formats import checkpoint_files, detect_format

    try:
        if path.is_dir():
            detect_format(path, allow_pickle)  # the files its format needs are there
            files = checkpoint_files(path)
        else:
            files = [path]
        for file in files:
            if (why := _file_incomplete(file)) is not None:
                return f"{file.name}: {why}" if file != path else why
    except BenchError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _file_incomplete(file: Path) -> str | None:
    """Parse what the file's format lets us check without loading tensors."""
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(file), "np"):  # checks the header covers the whole file
                return None
        except Exception as exc:  # SafetensorError: truncated or not written yet
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if file.suffix == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            return f"not complete JSON ({exc})"
        if file.name.endswith(".index.json") and isinstance(data, dict):  # sharded weights
            for shard in sorted(set((data.get("weight_map") or {}).values())):
                part = file.parent / str(shard)
                if not part.is_file():
                    return f"shard {shard} missing"
                if (why := _file_incomplete(part)) is not None:
                    return f"{shard}: {why}"
        return None
    if file.suffix in PICKLE_SUFFIXES and zipfile.is_zipfile(file):
        try:
            with zipfile.ZipFile(file) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            return f"incomplete archive ({exc})"
        return None if bad is None else f"incomplete archive entry {bad}"
    if file.suffix in PICKLE_SUFFIXES and file.stat().st_size == 0:
        return "empty"
    return None  # other files: the stability check alone


@dataclass
class Candidate:
    """A watched path not yet complete: its fingerprint and since when it has not changed."""

    fingerprint: Fingerprint
    since: float  # monotonic time from which the fingerprint is known unchanged
    why: str = "just appeared"


@dataclass
class Watcher:
    """Tracks the paths some glob matches; :meth:`poll` returns those newly complete.

    A path is complete when :func:`incomplete` finds nothing missing and its fingerprint has
    not changed for ``settle`` seconds (on the first look, the files' modification times
    count: a file untouched for longer needs no second look). A complete path that changes
    again (a trainer overwriting ``last.safetensors``) is watched again and, once complete,
    returned again: its new contents are a new checkpoint."""

    globs: list[str]
    settle: float = 2.0
    allow_pickle: bool = False
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    complete: dict[Path, Fingerprint] = field(default_factory=dict)
    pending: dict[Path, Candidate] = field(default_factory=dict)

    def matched(self) -> list[Path]:
        """Every file or folder a glob matches now, absolute, in glob order."""
        found: dict[Path, None] = {}
        for pattern in self.globs:
            for name in sorted(globlib.glob(pattern, recursive=True)):
                found[Path(os.path.abspath(name))] = None
        return list(found)

    def poll(self) -> list[Path]:
        """Look at every matched path once; return the ones that became complete."""
        now = self.clock()
        ready = []
        seen = set()
        for path in self.matched():
            seen.add(path)
            try:
                current = fingerprint(path, self.allow_pickle)
            except FileNotFoundError:
                continue
            if self.complete.get(path) == current:
                continue
            candidate = self.pending.get(path)
            if candidate is None or candidate.fingerprint != current:
                age = 0.0 if candidate is not None else self._age(path, current)
                self.pending[path] = candidate = Candidate(current, now - age, "being written")
                self.complete.pop(path, None)
            if now - candidate.since < self.settle or not current:
                candidate.why = "being written" if current else "empty"
                continue
            why = incomplete(path, self.allow_pickle)
            if why is not None:
                candidate.why = why
                continue
            self.complete[path] = current
            del self.pending[path]
            ready.append(path)
        for gone in set(self.pending) - seen:
            del self.pending[gone]
        for gone in set(self.complete) - seen:
            del self.complete[gone]
        return ready

    def _age(self, path: Path, current: Fingerprint) -> float:
        """Seconds since the newest modification in ``current`` (0 if in the future)."""
        if not current:
            return 0.0
        newest = max(mtime for _, _, mtime in current) / 1e9
        return max(0.0, self.wall() - newest)


def only_complete(config: RunConfig, complete: Iterable[Path]) -> RunConfig:
    """``config`` with each checkpoint glob replaced by the complete paths it matches (same
    overrides, same row names); entries given by ``path`` stay as they are."""
    keep = {Path(os.path.abspath(p)) for p in complete}
    entries = []
    for entry in config.checkpoints:
        if entry.glob is None:
            entries.append(entry)
            continue
        for name in sorted(globlib.glob(entry.glob, recursive=True)):
            path = Path(os.path.abspath(name))
            if path in keep:
                entries.append(entry.model_copy(update={"glob": None, "path": path}))
    return config.model_copy(update={"checkpoints": entries})


def watched_globs(config: RunConfig) -> list[str]:
    """The config's checkpoint globs; BenchError when there are none to watch."""
    globs = [entry.glob for entry in config.checkpoints if entry.glob is not None]
    if not globs:
        raise BenchError(
            "--watch needs a checkpoint 'glob' in the config (the files a trainer writes, "
            "e.g. 'glob: output/*.safetensors' or 'glob: output/checkpoint-*')"
        )
    return globs


def best_per_axis(board: pd.DataFrame, metrics: Iterable) -> list[tuple[str, str, str, float]]:
    """(axis, metric, checkpoint, value): per evaluation axis, the checkpoint with the best
    mean over the prompt types of the run's first metric on that axis."""
    from t2i_bench.report.leaderboard import Axis, axis_values

    out = []
    for axis in AXES:
        metric = next((m for m in metrics if m.axis == axis), None)
        if metric is None:
            continue
        values = axis_values(board, Axis(metric.name, tuple(metric.prompt_types), axis))
        if values.notna().any():
            row = values.idxmax() if metric.higher_is_better else values.idxmin()
            out.append((axis, metric.name, str(board.loc[row, "checkpoint"]), float(values[row])))
    return out


def best_line(board: pd.DataFrame, metrics: Iterable) -> str:
    """The console line ``best so far: fidelity clip_i lora-000010 0.8312 · …``."""
    best = best_per_axis(board, metrics)
    parts = [f"{axis} {metric} {ckpt} {value:.4g}" for axis, metric, ckpt, value in best]
    return "best so far: " + (" · ".join(parts) if parts else "no values yet")


@dataclass
class WatchResult:
    cycles: int = 0  # evaluations run (the first one included)
    evaluated: set[Path] = field(default_factory=set)  # watched paths evaluated
    interrupted: bool = False


def watch(
    globs: list[str],
    evaluate: Callable[[list[Path]], None],
    *,
    until: int | None = None,
    poll: float = 2.0,
    allow_pickle: bool = False,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    watcher: Watcher | None = None,
) -> WatchResult:
    """Evaluate once with the checkpoints complete now, then again each time more are
    complete (``evaluate`` gets every complete path), until ``until`` watched paths have
    been evaluated or Ctrl-C (KeyboardInterrupt) while waiting or evaluating."""
    watcher = watcher or Watcher(globs, settle=poll, allow_pickle=allow_pickle)
    result = WatchResult()
    told: dict[Path, str] = {}
    busy = False
    try:
        new = watcher.poll()
        while True:
            if new or result.cycles == 0:
                busy = True
                evaluate(sorted(watcher.complete))
                busy = False
                result.cycles += 1
                result.evaluated.update(new)
            if until is not None and len(result.evaluated) >= until:
                say(f"watch: {len(result.evaluated)} checkpoint(s) evaluated (--until {until})")
                return result
            for path, candidate in watcher.pending.items():
                if told.get(path) != candidate.why and candidate.why != "being written":
                    say(f"watch: waiting for {path.name}, not complete yet: {candidate.why}")
                    told[path] = candidate.why
            sleep(poll)
            new = watcher.poll()
    except KeyboardInterrupt:
        result.interrupted = True
        late = " (the evaluation in progress was cut short: run the same command to finish it)"
        say(
            f"watch: stopped (Ctrl-C) after {len(result.evaluated)} checkpoint(s) evaluated"
            + (late if busy else "")
        )
        return result

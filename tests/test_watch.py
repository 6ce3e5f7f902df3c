"""``t2i-bench run --watch``: checkpoints a trainer writes over time are each evaluated once,
as soon as they are completely written, and never while half-written."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from adapter_files import write_diffusers_lora_checkpoint, write_lycoris_file
from conftest import write_config
from safetensors.numpy import save_file
from tiny_models import build_tiny
from typer.testing import CliRunner

from t2i_bench import runner, watch
from t2i_bench.checkpoints import checkpoint_hash, resolve_checkpoints
from t2i_bench.cli import app
from t2i_bench.config import load_config
from t2i_bench.generation.adapters import AdapterSwitcher
from t2i_bench.generation.formats import detect_format
from t2i_bench.generation.worker import Renderer
from t2i_bench.store import RunLock, RunStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _safetensors_bytes(tmp: Path, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    save_file({"lora_unet_x.lora_down.weight": rng.normal(size=(64, 64)).astype("float32")}, tmp)
    return tmp.read_bytes()


def test_a_file_written_in_chunks_is_complete_only_when_whole(tmp_path: Path) -> None:
    data = _safetensors_bytes(tmp_path / "source.safetensors")
    folder = tmp_path / "out"
    folder.mkdir()
    clock = FakeClock()
    watcher = watch.Watcher([str(folder / "*.safetensors")], settle=2.0, clock=clock)
    target = folder / "run-000001.safetensors"
    chunks = [data[i : i + 4000] for i in range(0, len(data), 4000)]
    with target.open("wb") as handle:
        for chunk in chunks[:-1]:
            handle.write(chunk)
            handle.flush()
            assert watcher.poll() == []
            clock.now += 60.0  # the writer pauses far longer than the settle time
            assert watcher.poll() == []  # stable but not parseable: never loaded
            assert "not fully covered" in watcher.pending[target].why or "header" in (
                watcher.pending[target].why
            )
        handle.write(chunks[-1])
    assert watcher.poll() == []  # just changed: wait for it to settle
    clock.now += 1.0
    assert watcher.poll() == []
    clock.now += 1.5
    assert watcher.poll() == [target] and watcher.pending == {}
    assert watcher.poll() == []  # reported once
    target.write_bytes(_safetensors_bytes(tmp_path / "other.safetensors", seed=1))  # overwritten
    assert watcher.poll() == []
    clock.now += 3.0
    assert watcher.poll() == [target]  # its new contents are a new checkpoint


def test_files_already_complete_need_no_second_look(tmp_path: Path) -> None:
    target = tmp_path / "old.safetensors"
    _safetensors_bytes(target)
    old = time.time() - 3600
    os.utime(target, (old, old))
    watcher = watch.Watcher([str(tmp_path / "*.safetensors")], settle=2.0, clock=FakeClock())
    assert watcher.poll() == [target]
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(target.read_bytes()[:-10])
    os.utime(broken, (old, old))
    assert watcher.poll() == []  # old but truncated: waits, says why
    assert "not fully covered" in watcher.pending[broken].why


def test_a_checkpoint_folder_needs_its_weights_whole(tmp_path: Path) -> None:
    staged, _ = write_diffusers_lora_checkpoint(tmp_path / "staged" / "checkpoint-200", seed=3)
    folder = tmp_path / "run" / "checkpoint-200"
    folder.mkdir(parents=True)
    clock = FakeClock()
    watcher = watch.Watcher([str(tmp_path / "run" / "checkpoint-*")], settle=2.0, clock=clock)
    assert watcher.poll() == []  # empty
    clock.now += 10
    weights = "pytorch_lora_weights.safetensors"
    shutil.copy(staged / "random_states_0.pkl", folder)
    assert watcher.poll() == []
    clock.now += 10
    assert watcher.poll() == [] and "not a checkpoint" in watcher.pending[folder].why
    data = (staged / weights).read_bytes()
    (folder / weights).write_bytes(data[: len(data) // 2])
    clock.now += 10
    assert watcher.poll() == []
    clock.now += 10
    assert watcher.poll() == [] and weights in watcher.pending[folder].why
    (folder / weights).write_bytes(data)
    assert watcher.poll() == []
    clock.now += 10
    assert watcher.poll() == [folder]
    for name in ("optimizer.bin", "scheduler.bin"):  # accelerate's state, after the weights
        shutil.copy(staged / name, folder)
        clock.now += 10
        assert watcher.poll() == []  # not part of the checkpoint: nothing to evaluate again


def test_only_complete_keeps_names_and_overrides(concept_dir: Path) -> None:
    pipe = build_tiny("sd1", 0)
    folder = concept_dir / "ckpts"
    folder.mkdir()
    paths = [write_lycoris_file(pipe, folder / f"zyx-{i:06d}.safetensors", seed=i) for i in (1, 2)]
    extra = f"checkpoints:\n  - {{glob: {folder}/*.safetensors, multipliers: [0.5, 1.0]}}\n"
    config = load_config(write_config(concept_dir, extra))
    full = resolve_checkpoints(config)
    part = resolve_checkpoints(watch.only_complete(config, [paths[1]]))
    assert [c.name for c in part] == ["base", "zyx-000002@0.5", "zyx-000002@1"]
    assert [(c.name, c.file_hash, c.multiplier) for c in part[1:]] == [
        (c.name, c.file_hash, c.multiplier) for c in full[3:]
    ]
    assert [c.name for c in resolve_checkpoints(watch.only_complete(config, []))] == ["base"]


@pytest.fixture()
def spies(monkeypatch) -> dict:
    """Records what the run reads and computes: checkpoint rows, adapters applied (with the
    contents' hash at that moment), images rendered, values stored, completeness checks."""
    seen: dict = {"rows": [], "applied": [], "rendered": [], "scores": [], "checks": []}
    polls = Counter()

    def resolve(config, allow_pickle=False):
        rows = resolve_checkpoints(config, allow_pickle)
        seen["rows"].extend(rows[1:])
        return rows

    def content_hash(path: Path) -> str:
        return checkpoint_hash(path, detect_format(path))

    def apply(self, path, multiplier=1.0, token=None):
        seen["applied"].append((Path(path), content_hash(Path(path))))
        return real_apply(self, path, multiplier, token)

    def render(self, task):
        seen["rendered"].extend(task.keys)
        return real_render(self, task)

    def put_scores(self, metric, checkpoint, concept, prompt_type, *args, **kwargs):
        seen["scores"].append((metric, checkpoint, concept, prompt_type))
        return real_put(self, metric, checkpoint, concept, prompt_type, *args, **kwargs)

    def incomplete(path, allow_pickle=False):
        why = real_incomplete(path, allow_pickle)
        seen["checks"].append((path.name, why))
        return why

    def poll(self):
        try:
            return real_poll(self)
        finally:
            polls["n"] += 1

    real_apply, real_render = AdapterSwitcher.apply, Renderer.render
    real_put, real_incomplete, real_poll = RunStore.put_scores, watch.incomplete, watch.Watcher.poll
    monkeypatch.setattr(runner, "resolve_checkpoints", resolve)
    monkeypatch.setattr(AdapterSwitcher, "apply", apply)
    monkeypatch.setattr(Renderer, "render", render)
    monkeypatch.setattr(RunStore, "put_scores", put_scores)
    monkeypatch.setattr(watch, "incomplete", incomplete)
    monkeypatch.setattr(watch.Watcher, "poll", poll)
    seen["polls"] = polls
    seen["content_hash"] = content_hash
    return seen


def _wait_polls(polls: Counter, count: int, timeout: float = 300.0) -> None:
    """Until the watcher has looked ``count`` more times (it looks only when idle)."""
    target, start = polls["n"] + count, time.monotonic()
    while polls["n"] < target:
        assert time.monotonic() - start < timeout, "the watcher stopped looking"
        time.sleep(0.05)


def _write_slowly(path: Path, data: bytes, polls: Counter, parts: int = 3) -> None:
    """Write ``data`` in ``parts`` chunks; after each, let the watcher look twice (so the
    part stays unchanged for longer than its settle time)."""
    step = -(-len(data) // parts)
    with path.open("wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            if start + step < len(data):
                _wait_polls(polls, 2)


def _setup(concept_dir: Path) -> tuple[Path, Path, dict[str, bytes], Path]:
    """A tiny SD 1.x base folder, a watched folder with one complete kohya file, and the
    bytes of the files a trainer will write later (staged elsewhere)."""
    pipe = build_tiny("sd1", 0)
    base = concept_dir / "base"
    pipe.save_pretrained(base)
    watched = concept_dir / "trainer"
    watched.mkdir()
    staged = concept_dir / "staged"
    staged.mkdir()
    first = write_lycoris_file(pipe, watched / "zyx-000001.safetensors", seed=1)
    old = time.time() - 3600
    os.utime(first, (old, old))  # written before the watch started: evaluated at once
    later = {
        "zyx-000002.safetensors": write_lycoris_file(
            pipe, staged / "zyx-000002.safetensors", algo="loha", seed=2
        ).read_bytes()
    }
    folder, _ = write_diffusers_lora_checkpoint(staged / "checkpoint-200", seed=3)
    for file in folder.iterdir():
        later[f"run/checkpoint-200/{file.name}"] = file.read_bytes()
    extra = (
        f"checkpoints:\n  - {{glob: {watched}/zyx-*.safetensors}}\n"
        f"  - {{glob: {watched}/run/checkpoint-*}}\n"
    )
    config = write_config(concept_dir, extra)
    config.write_text(config.read_text().replace("{source: tiny}", f"{{source: {base}}}"))
    return config, watched, later, concept_dir / "out"


def test_watch_evaluates_each_file_once_when_complete(concept_dir: Path, spies: dict) -> None:
    config, watched, later, out = _setup(concept_dir)
    polls = spies["polls"]
    errors: list[BaseException] = []

    def trainer() -> None:
        try:
            _wait_polls(polls, 1)  # the first evaluation is under way
            name = "zyx-000002.safetensors"
            _write_slowly(watched / name, later[name], polls)  # a slow kohya epoch
            _wait_polls(polls, 1)
            folder = watched / "run" / "checkpoint-200"
            folder.mkdir(parents=True)
            weights = "pytorch_lora_weights.safetensors"  # the save hook's file first
            _write_slowly(folder / weights, later[f"run/checkpoint-200/{weights}"], polls)
            for key, data in later.items():  # then accelerate's states
                if key.startswith("run/") and not key.endswith(weights):
                    (watched / key).write_bytes(data)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=trainer, daemon=True)
    thread.start()
    result = CliRunner().invoke(
        app, ["run", str(config), "--watch", "--until", "3", "--poll", "0.3"]
    )
    thread.join(timeout=60)
    assert not errors, errors
    assert result.exit_code == 0, result.output
    assert "watch: 3 checkpoint(s) evaluated (--until 3)" in result.output
    assert result.output.count("best so far: fidelity clip_i") == 3
    # the slow files were looked at while partial, and refused
    refused = {name for name, why in spies["checks"] if why is not None}
    assert {"zyx-000002.safetensors", "checkpoint-200"} <= refused
    assert "waiting for zyx-000002.safetensors" in result.output
    # nothing half-written was ever read by the run: every row and every adapter applied
    # has the final contents
    final = {
        watched / "zyx-000001.safetensors",
        watched / "zyx-000002.safetensors",
        watched / "run" / "checkpoint-200",
    }
    hashes = {path: spies["content_hash"](path) for path in final}
    assert {(row.path, row.file_hash) for row in spies["rows"]} == set(hashes.items())
    assert all(row.format != "unreadable" for row in spies["rows"])
    applied = [path for path, _ in spies["applied"]]
    assert sorted(applied) == sorted(final)  # each applied exactly once
    assert all(sha == hashes[path] for path, sha in spies["applied"])
    # nothing computed twice: each image rendered once, each value stored once
    rendered = Counter(spies["rendered"])
    assert rendered and max(rendered.values()) == 1
    assert Counter(spies["scores"]) and max(Counter(spies["scores"]).values()) == 1
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["checkpoint"]) == {
        "base",
        "zyx-000001",
        "zyx-000002",
        "run-checkpoint-200",
    }
    store = RunStore(out)
    assert store.failures() == []
    assert len(store.existing_images()) == len(rendered)
    store.close()
    RunLock(out).acquire().release()  # released


def test_ctrl_c_stops_cleanly(concept_dir: Path, spies: dict) -> None:
    config, _, _, out = _setup(concept_dir)
    polls = spies["polls"]

    def interrupt() -> None:
        _wait_polls(polls, 2)  # evaluated, then idle
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    result = CliRunner().invoke(app, ["run", str(config), "--watch", "--poll", "0.2"])
    thread.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert "watch: stopped (Ctrl-C) after 1 checkpoint(s) evaluated" in result.output
    RunLock(out).acquire().release()  # the lock was released
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["checkpoint"].tolist() == ["base", "zyx-000001"]
    assert not list((out / "images").rglob("*.tmp"))
    text = config.read_text().splitlines(keepends=True)
    config.write_text("".join(line for line in text if "checkpoint-*" not in line))
    again = CliRunner().invoke(app, ["run", str(config)])  # nothing lost: all cached
    assert again.exit_code == 0, again.output
    assert "nothing to render" in again.output and "nothing to score" in again.output


def test_watch_needs_a_glob(concept_dir: Path) -> None:
    config = write_config(concept_dir)
    result = CliRunner().invoke(app, ["run", str(config), "--watch"])
    assert result.exit_code == 2 and "--watch needs a checkpoint 'glob'" in result.output
    result = CliRunner().invoke(app, ["run", str(config), "--until", "2"])
    assert result.exit_code == 2 and "--until needs --watch" in result.output

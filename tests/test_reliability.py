"""A run survives SIGKILL anywhere, refuses a second concurrent run, and takes over stale locks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from adapter_files import write_lycoris_file
from conftest import write_config

from t2i_bench.errors import BenchError
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.store import RunStore

KILL_POINTS = ["image:2", "image:9", "image:17", "embedding:1", "score:1", "score:4"]


def _run(config: Path, output: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("T2I_BENCH_KILL_AT", None)
    if kill_at:
        env["T2I_BENCH_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "t2i_bench", "run", str(config), "--output", str(output)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapters")
    pipe = load_base_pipeline("tiny", seed=0)
    write_lycoris_file(pipe, folder / "a-lora.safetensors", algo="lora", seed=1)
    write_lycoris_file(pipe, folder / "b-lokr.safetensors", algo="lokr", seed=2)
    return folder


def test_killed_anywhere_then_resumed_gives_identical_outputs(concept_dir: Path, adapters: Path):
    config = write_config(concept_dir, f"checkpoints: [{{glob: '{adapters}/*.safetensors'}}]\n")
    clean = _run(config, concept_dir / "clean")
    assert clean.returncode == 0, clean.stderr
    killed = concept_dir / "killed"
    for point in KILL_POINTS:
        result = _run(config, killed, point)
        assert result.returncode == -signal.SIGKILL, (point, result.stderr[-2000:])
    final = _run(config, killed)
    assert final.returncode == 0, final.stderr
    assert (killed / "leaderboard.csv").read_bytes() == (
        concept_dir / "clean" / "leaderboard.csv"
    ).read_bytes()
    db = sqlite3.connect(killed / "run.sqlite")
    jobs = db.execute("SELECT COUNT(*), COUNT(DISTINCT image_key) FROM jobs").fetchone()
    images = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    assert jobs == (30, 30) and images == 30  # exactly one row per job, one image per key
    pngs = list((killed / "images").rglob("*.png"))
    assert len(pngs) == 30 and not list((killed / "images").rglob("*.tmp"))
    scores = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT metric || checkpoint || concept || prompt_type || item) "
        "FROM scores"
    ).fetchone()
    assert scores[0] == scores[1] > 0


def test_second_run_is_refused_and_stale_lock_taken_over(tmp_path: Path) -> None:
    first = RunStore(tmp_path).lock()
    with pytest.raises(BenchError) as info:
        RunStore(tmp_path).lock()
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: in use by another t2i-bench run (pid {os.getpid()}")
    first.release()
    RunStore(tmp_path).lock().release()

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from t2i_bench.store import RunStore; "
            f"lock = RunStore({str(tmp_path)!r}).lock(); print('locked', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(BenchError, match=f"pid {holder.pid}"):
        RunStore(tmp_path).lock()
    holder.kill()
    holder.wait()
    lock = RunStore(tmp_path).lock()  # the dead run's lock is taken over
    assert lock.took_over is not None and f"pid {holder.pid}" in lock.took_over
    lock.release()

"""Comparison: quickstart generation with one competing CPU-bound process vs alone
(target <= 2.5x time).

Each side runs ``runner.generate`` of the quickstart (``examples/quickstart.yaml`` on the demo,
built or taken from ``.cache/demo``; ``threads`` as the quickstart sets it: torch's default,
this machine's core count) in a fresh process, into a fresh output folder. The loaded side
first starts ``python -c "while True: pass"`` and stops it afterwards. Rounds alternate alone,
loaded. The notes add the same comparison on a few render batches with libgomp's default
spinning (``GOMP_SPINCOUNT=300000``, how torch ran before ``t2i_bench/threads.py``) and
whether every run wrote the same PNG bytes.

``python -m benchmarks.contention CONFIG OUTPUT [BATCHES]`` is the child: it prints one JSON
line (wall and CPU seconds of ``runner.generate``, images, the thread count, a hash of the
PNGs).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import t2i_bench  # noqa: F401  (before torch: sets OpenMP's wait policy, t2i_bench/threads.py)
from benchmarks.common import REPO, Context, Row

NAME = "contention"
QUICKSTART = REPO / "examples" / "quickstart.yaml"
SPIN_BATCHES = 2  # render batches for the spinning contrast (it can run 20x slower)


@contextmanager
def competitor():
    """One CPU-bound process running for the duration of the block."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it reach the CPU
        yield
    finally:
        hog.kill()
        hog.wait()


def child(output: Path, batches: int = 0, spinning: bool = False) -> dict:
    """Generate in a fresh process (OpenMP settings take effect only before torch loads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if spinning:
        env["GOMP_SPINCOUNT"] = "300000"  # libgomp's default when no wait policy is set
    command = [sys.executable, "-m", "benchmarks.contention", str(QUICKSTART), str(output)]
    done = subprocess.run(
        [*command, str(batches)], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"generation child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> Row:
    from t2i_bench.demo.__main__ import default_out_dir
    from t2i_bench.demo.build import build_demo

    start = time.perf_counter()
    build_demo(default_out_dir())
    demo_s = time.perf_counter() - start
    root = ctx.workdir / "contention"
    batches = ctx.size(0, 4)  # 0: the whole quickstart
    rounds = ctx.rounds(2)
    alone, loaded = [], []
    for i in range(rounds):
        alone.append(child(root / f"alone-{i}", batches))
        with competitor():
            loaded.append(child(root / f"loaded-{i}", batches))
    subset = {}  # (spinning, loaded) -> result, on SPIN_BATCHES batches
    for spinning in (False, True):
        subset[spinning, False] = child(root / f"sub-{spinning}-alone", SPIN_BATCHES, spinning)
        with competitor():
            subset[spinning, True] = child(root / f"sub-{spinning}-loaded", SPIN_BATCHES, spinning)
    t_alone = min(r["wall"] for r in alone)
    t_loaded = min(r["wall"] for r in loaded)
    same = len({r["sha"] for r in alone + loaded}) == 1
    subset_same = len({r["sha"] for r in subset.values()}) == 1
    sub = {key: r["wall"] for key, r in subset.items()}
    images, threads = alone[0]["images"], alone[0]["threads"]
    cpu_ratio = min(r["cpu"] for r in loaded) / min(r["cpu"] for r in alone)
    notes = (
        f"quickstart: {images} images, 64 px, DDIM 10 steps, {threads} torch threads "
        f"(the config's default), demo {'built' if demo_s > 5 else 'cached'} ({demo_s:.0f} s); "
        f"best of {rounds}: alone {_times(alone)} s, loaded {_times(loaded)} s; CPU-time ratio "
        f"{cpu_ratio:.2f}; {'identical PNGs in every run' if same else 'PNGs DIFFER'}; "
        f"on {subset[False, False]['images']} of the images, before (libgomp's default "
        f"spinning, GOMP_SPINCOUNT=300000): alone {sub[True, False]:.1f} s, loaded "
        f"{sub[True, True]:.1f} s = {sub[True, True] / sub[True, False]:.1f}x; now (passive): "
        f"alone {sub[False, False]:.1f} s, loaded {sub[False, True]:.1f} s = "
        f"{sub[False, True] / sub[False, False]:.1f}x; loaded before / now "
        f"{sub[True, True] / sub[False, True]:.1f}x "
        f"({'same PNGs' if subset_same else 'PNGs DIFFER'})"
    )
    return Row(
        NAME,
        "quickstart generation with one competing CPU-bound process vs alone",
        t_loaded,
        t_alone,
        "s",
        t_loaded / t_alone,
        "time loaded / alone",
        "<=",
        2.5,
        notes,
    )


def _times(results: list[dict]) -> str:
    return ", ".join(f"{r['wall']:.1f}" for r in results)


def _generate(config: Path, output: Path, batches: int) -> dict:
    import torch

    from t2i_bench import runner

    run = runner.prepare(config, output_dir=output)
    try:
        if batches:  # a spread of render batches (several checkpoints), not the first few
            step = max(1, len(run.plan.batches) // batches)
            run.plan.batches = run.plan.batches[::step][:batches]
        wall, cpu = time.perf_counter(), time.process_time()
        rendered, failed = runner.generate(run)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if failed:
            raise RuntimeError(f"{failed} checkpoint(s) failed to load")
        digest = hashlib.sha256()
        for png in sorted((output / "images").rglob("*.png")):
            digest.update(png.name.encode() + png.read_bytes())
        threads = runner.pipeline_spec(run).threads
    finally:
        run.close()
    return {
        "wall": wall,
        "cpu": cpu,
        "images": rendered,
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "sha": digest.hexdigest(),
    }


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config, output, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(_generate(Path(config), Path(output), batches)))

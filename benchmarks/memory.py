"""Comparison 5: peak RSS scoring 4,000 images <= 1.3x peak RSS scoring 400.

Rendering 4,000 images with the pipeline would take most of the time budget, so the run
stores are filled with procedural 64 px PNGs (``put_png`` under each planned image key):
base + 9 (or + 99) rows of one LyCORIS adapter at different multipliers, 20 prompts x 2
seeds a row. Each store is then scored (``runner.embed`` + ``runner.score``, tiny backbone
profile, 13 metrics) in a fresh subprocess that reports its peak RSS: ``VmHWM`` from
``/proc/self/status``, because on Linux ``ru_maxrss`` carries the parent's peak across
fork + exec (a child of a 3.6 GB benchmark process reads 3.6 GB before doing anything).

Run as ``python -m benchmarks.memory CONFIG`` it is that subprocess.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, Context, Row
from benchmarks.workload import procedural_image, write_adapters, write_concept, write_config

NAME = "memory"


def fill_store(config: Path) -> int:
    """Write a procedural PNG for every planned image; returns how many."""
    from t2i_bench import runner
    from t2i_bench.store import png_bytes

    run = runner.prepare(config)
    try:
        for i, key in enumerate(sorted(run.plan.image_keys)):
            run.store.put_png(key, png_bytes(procedural_image(i)))
        return len(run.plan.image_keys)
    finally:
        run.close()


def score_in_subprocess(config: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """This process's peak resident set size (``VmHWM``; ``ru_maxrss`` where it is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(config: Path) -> dict:
    """Score a filled store; peak RSS (MiB) after start-up and at the end."""
    import torch

    from t2i_bench import runner

    before = peak_rss_mib()
    start = time.perf_counter()
    run = runner.prepare(config)
    try:
        torch.set_num_threads(run.config.threads or 1)
        embedded = runner.embed(run)
        summary = runner.score(run)
        images = len(run.plan.image_keys)
    finally:
        run.close()
    return {
        "images": images,
        "embedded": embedded,
        "scored": summary.computed,
        "failed": summary.failed,
        "seconds": time.perf_counter() - start,
        "rss_start_mib": before,
        "peak_rss_mib": peak_rss_mib(),
    }


def run(ctx: Context) -> Row:
    root = ctx.workdir / "memory"
    root.mkdir(parents=True, exist_ok=True)
    concept = write_concept(root, references=4)  # 4 captions: 4 train prompts
    adapter = write_adapters(root / "adapters", 1)
    per_type = ctx.size(5, 1)  # 4 train + 1 trigger + 3 x 5 = 20 prompts (quick: 5)
    results = {}
    for rows in (ctx.size(10, 4), ctx.size(100, 40)):
        multipliers = [round(0.05 + 0.01 * i, 2) for i in range(rows - 1)]
        config = write_config(
            root,
            f"rows{rows}",
            adapter,
            concept,
            images_per_prompt=2,
            max_per_type=per_type,
            threads=ctx.threads,
            multipliers=multipliers,
        )
        fill_store(config)
        results[rows] = score_in_subprocess(config)
    small, large = (results[k] for k in sorted(results))
    for r in (small, large):
        if r["failed"]:
            raise RuntimeError(f"memory: {r['failed']} metric groups failed")
    growth = (large["peak_rss_mib"] - large["rss_start_mib"]) / max(
        small["peak_rss_mib"] - small["rss_start_mib"], 1e-9
    )
    notes = (
        f"procedural PNGs, tiny backbones, 13 metrics; {small['images']} images: peak "
        f"{small['peak_rss_mib']:.0f} MiB ({small['rss_start_mib']:.0f} after imports), "
        f"{small['scored']} groups in {small['seconds']:.0f} s; {large['images']} images: peak "
        f"{large['peak_rss_mib']:.0f} MiB ({large['rss_start_mib']:.0f} after imports), "
        f"{large['scored']} groups in {large['seconds']:.0f} s; growth above the imports "
        f"{growth:.2f}x"
    )
    return Row(
        NAME,
        f"peak RSS scoring {large['images']} vs {small['images']} images",
        large["peak_rss_mib"],
        small["peak_rss_mib"],
        "MiB",
        large["peak_rss_mib"] / small["peak_rss_mib"],
        "peak RSS large / small",
        "<=",
        1.3,
        notes,
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(child(Path(sys.argv[1]))))

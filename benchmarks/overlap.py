"""Comparison: generation with PNG encoding and store writes beside rendering vs in series
(target >= 1.0x throughput, identical files).

Both sides run ``runner.generate`` on fresh copies of the same prepared run (the tiny base
and LyCORIS adapters over every prompt type, batches of 32): ``LocalExecutor(overlap=False)``
renders a batch, encodes its PNGs, then the driver writes them, in turn (how t2i-bench
generated before); ``LocalExecutor()`` renders the next batch on a background thread while
the driver encodes and writes the last one. Rounds alternate. The last round's runs are then
scored and reported (not timed) and their PNG bytes, image rows and ``leaderboard.csv``
compared.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.common import Context, Row, interleaved
from benchmarks.workload import write_adapters, write_concept, write_config

NAME = "overlap"


def _fresh(prepared: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(prepared, target, ignore=shutil.ignore_patterns("run.lock"))
    return target


def _generate(config: Path, output: Path, overlap: bool) -> int:
    from t2i_bench import runner
    from t2i_bench.executors import LocalExecutor

    run = runner.prepare(config, output_dir=output)
    run.executor = LocalExecutor(overlap=overlap)
    try:
        rendered, failed = runner.generate(run)
        if failed:
            raise RuntimeError(f"{failed} checkpoint(s) failed to load")
        return rendered
    finally:
        run.close()


def _finish(config: Path, output: Path) -> tuple[dict[str, bytes], list, bytes]:
    """Score and report a generated run; its PNGs, image rows and leaderboard."""
    from t2i_bench import runner
    from t2i_bench.report.build import write_report

    run = runner.prepare(config, output_dir=output)
    try:
        runner.embed(run)
        runner.score(run)
        write_report(run)
        rows = run.store.image_records()
    finally:
        run.close()
    pngs = {p.name: p.read_bytes() for p in sorted((output / "images").rglob("*.png"))}
    return pngs, rows, (output / "leaderboard.csv").read_bytes()


def run(ctx: Context) -> Row:
    from t2i_bench import runner

    root = ctx.workdir / "overlap"
    root.mkdir(parents=True, exist_ok=True)
    concept = write_concept(root, references=6)
    config = write_config(
        root,
        "overlap",
        write_adapters(root / "adapters", ctx.size(3, 1)),
        concept,
        images_per_prompt=2,
        max_per_type=ctx.size(4, 1),
        threads=ctx.threads,
        metrics=("clip_i", "clip_t"),
    )
    prepared = root / "prepared"
    runner.prepare(config, output_dir=prepared).close()
    _generate(config, _fresh(prepared, root / "warm"), True)  # first-call initialisation
    outputs = {"serial": root / "serial", "overlap": root / "overlapped"}
    repeats = ctx.rounds(5)  # runs of a few seconds: more rounds than elsewhere
    timed = interleaved(
        {
            "serial": lambda: _generate(config, _fresh(prepared, outputs["serial"]), False),
            "overlap": lambda: _generate(config, _fresh(prepared, outputs["overlap"]), True),
        },
        repeats=repeats,
    )
    (c_serial, n), (c_overlap, _) = timed["serial"], timed["overlap"]
    serial, overlapped = _finish(config, outputs["serial"]), _finish(config, outputs["overlap"])
    same = [
        "PNG bytes" if serial[0] == overlapped[0] else "PNG bytes DIFFER",
        "image rows" if serial[1] == overlapped[1] else "image rows DIFFER",
        "leaderboard.csv" if serial[2] == overlapped[2] else "leaderboard.csv DIFFERS",
    ]
    identical = all("DIFFER" not in s for s in same)
    notes = (
        f"{n} images (tiny base + {ctx.size(3, 1)} LyCORIS adapters, every prompt type), 64 px, "
        f"DDIM 10 steps, batches of 32, {ctx.threads} torch thread(s); best of {repeats}; "
        f"CPU-time ratio {c_serial.cpu / c_overlap.cpu:.2f}; "
        + ("identical " + ", ".join(same) if identical else "; ".join(same))
    )
    return Row(
        NAME,
        "PNG encoding and store writes beside rendering vs in series",
        n / c_overlap.wall,
        n / c_serial.wall,
        "img/s",
        c_serial.wall / c_overlap.wall,
        "throughput overlapped / serial",
        ">=",
        1.0,
        notes,
    )

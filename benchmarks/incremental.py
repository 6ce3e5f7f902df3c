"""Comparison 3: adding 1 checkpoint to an evaluated run of 8 (target <= 0.2x the first run,
report stage included).

A whole run through the runner (prepare, generate, embed, score) and the report stage
(``write_report``, the rest of ``t2i-bench run``) over the tiny base model and 8 LyCORIS
adapters, timed; then the same run folder with a 9th adapter added, timed. The ratio includes
the report stage (it is incremental: only plots and analyses whose data changed are redrawn);
the notes give each stage's time and the ratio without it. Tiny backbone profile, the
13-metric suite. A throwaway warm-up run first, so neither timed run pays the process's
one-time initialisation. The first run is timed twice (fresh folders), the re-run three times
(each on a copy of the evaluated folder); the best of each counts.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks.common import Context, Row
from benchmarks.workload import write_adapters, write_concept, write_config

NAME = "incremental"


def full_run(config: Path, output: Path) -> dict[str, float | int]:
    """One ``t2i-bench run`` through the runner; seconds per stage and what was computed."""
    from t2i_bench import runner
    from t2i_bench.report.build import write_report

    times: dict[str, float | int] = {}
    start, cpu = time.perf_counter(), time.process_time()
    run = runner.prepare(config, output_dir=output)
    try:
        times["prepare"] = time.perf_counter() - start
        mark = time.perf_counter()
        times["rendered"], failed = runner.generate(run)
        if failed:
            raise RuntimeError(f"{failed} checkpoint(s) failed to load")
        times["generate"] = time.perf_counter() - mark
        mark = time.perf_counter()
        times["embedded"] = runner.embed(run)
        times["embed"] = time.perf_counter() - mark
        mark = time.perf_counter()
        summary = runner.score(run)
        times["scored"], times["cached"] = summary.computed, summary.skipped
        times["score"] = time.perf_counter() - mark
        times["cpu"] = time.process_time() - cpu
        mark = time.perf_counter()
        write_report(run)
        times["report"] = time.perf_counter() - mark
    finally:
        run.close()
    times["with_report"] = time.perf_counter() - start
    times["total"] = float(times["with_report"]) - float(times["report"])
    return times


def _stages(t: dict[str, float | int]) -> str:
    return ", ".join(f"{k} {t[k]:.1f}" for k in ("prepare", "generate", "embed", "score", "report"))


def run(ctx: Context) -> Row:
    root = ctx.workdir / "incremental"
    root.mkdir(parents=True, exist_ok=True)
    concept = write_concept(root, references=6)
    n = ctx.size(8, 2)
    adapters = write_adapters(root / "adapters", n + 1)
    sizes = {"images_per_prompt": 2, "max_per_type": ctx.size(2, 1), "threads": ctx.threads}
    warmup = write_config(root, "warmup", adapters[:1], concept, **{**sizes, "max_per_type": 1})
    full_run(warmup, root / "warmup")
    eight = write_config(root, "first", adapters[:n], concept, **sizes)
    nine = write_config(root, "again", adapters, concept, **sizes)
    firsts = [full_run(eight, root / f"first-{i}") for i in range(ctx.rounds(2))]
    agains = []
    for i in range(ctx.rounds(3)):
        copy = root / f"again-{i}"
        shutil.copytree(root / "first-0", copy, ignore=shutil.ignore_patterns("run.lock"))
        agains.append(full_run(nine, copy))
    first = min(firsts, key=lambda t: float(t["with_report"]))
    again = min(agains, key=lambda t: float(t["with_report"]))
    notes = (
        f"tiny profile; first run: {n} adapters + base, rendered {first['rendered']}, "
        f"embedded {first['embedded']}, scored {first['scored']} groups ({_stages(first)} s); "
        f"re-run with {n + 1}: rendered {again['rendered']}, embedded {again['embedded']}, "
        f"scored {again['scored']} ({again['cached']} cached) ({_stages(again)} s); "
        f"without the report stage {again['total']:.1f} / {first['total']:.1f} s = "
        f"{float(again['total']) / float(first['total']):.2f}; CPU-time ratio (runner "
        "stages) "
        f"{min(float(t['cpu']) for t in agains) / min(float(t['cpu']) for t in firsts):.3f}; "
        "best of "
        f"{len(firsts)} and {len(agains)} (first "
        + ", ".join(f"{float(t['with_report']):.1f}" for t in firsts)
        + " s; re-run "
        + ", ".join(f"{float(t['with_report']):.1f}" for t in agains)
        + " s, report included)"
    )
    return Row(
        NAME,
        f"add 1 checkpoint to an evaluated run of {n} (report included)",
        float(again["with_report"]),
        float(first["with_report"]),
        "s",
        float(again["with_report"]) / float(first["with_report"]),
        "time re-run / first run",
        "<=",
        0.2,
        notes,
    )

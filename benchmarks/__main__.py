"""``python -m benchmarks [--quick] [--only NAME ...]``: run, print, append to RESULTS.md."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import t2i_bench  # noqa: E402, F401  (before torch: OpenMP's wait policy, t2i_bench/threads.py)
from benchmarks import COMPARISONS  # noqa: E402
from benchmarks.common import (  # noqa: E402
    REPO,
    Context,
    Row,
    Skipped,
    append_results,
    command_line,
    format_table,
    load_average,
    results_entry,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        choices=COMPARISONS,
        metavar="NAME",
        help=f"run only this comparison (repeatable): {', '.join(COMPARISONS)}",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for every single-process measurement (default 1; see README)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / "benchmarks" / "RESULTS.md",
        help="markdown file the result table is appended to",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=900.0,
        help="seconds the command should stay under: past 55%% of it, comparisons time one "
        "round instead of 2-3 (default 900)",
    )
    parser.add_argument("--no-append", action="store_true", help="print only")
    parser.add_argument(
        "--workdir", type=Path, help="keep the workloads here (default: a temporary folder)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from benchmarks.zoo import DESCRIPTION

    torch.set_num_threads(args.threads)
    start, load_start = time.perf_counter(), load_average()
    names = [n for n in COMPARISONS if not args.only or n in args.only]
    rows: list[Row] = []
    failed: list[str] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="t2i-bench-benchmarks-") as tmp:
        workdir = args.workdir or Path(tmp)
        ctx = Context(
            workdir=workdir,
            quick=args.quick,
            threads=args.threads,
            selected=tuple(names),
            budget=args.budget,
            started=start,
        )
        for name in names:
            module = importlib.import_module(f"benchmarks.{name}")
            print(f"[{time.perf_counter() - start:6.0f} s] {name} …", flush=True)
            try:
                row = module.run(ctx)
            except Skipped as why:
                print(f"[{time.perf_counter() - start:6.0f} s] {name}: skipped: {why}", flush=True)
                skipped.append(f"{name}: {why}")
                continue
            except Exception:
                traceback.print_exc()
                failed.append(name)
                continue
            rows.append(row)
            print(
                f"[{time.perf_counter() - start:6.0f} s] {name}: ratio {row.ratio:.3f} "
                f"(target {row.op} {row.target:g}, {'met' if row.met else 'NOT met'})",
                flush=True,
            )
    wall = time.perf_counter() - start
    print()
    print(format_table(rows))
    print(f"\nwall time {wall:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if not args.no_append and rows:
        extra = [
            f"threads {args.threads} per process (Ray workers: 1 each)",
            f"scoring backbones (per_metric, floor): {DESCRIPTION}; "
            "incremental and memory: the tiny profile",
        ]
        if failed:
            extra.append(f"failed: {', '.join(failed)} (see the command's output)")
        extra.extend(f"skipped {line}" for line in skipped)
        mode = "quick" if args.quick else "full"
        entry = results_entry(rows, command_line(), mode, wall, (load_start, load_average()), extra)
        append_results(args.results, entry)
        print(f"appended to {args.results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

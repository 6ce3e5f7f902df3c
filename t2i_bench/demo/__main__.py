"""``python -m t2i_bench.demo [OUT_DIR] [--force]``: build the demo and print its timings."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def default_out_dir() -> Path:
    """``.cache/demo`` in the repository (or, for an installed package, the current dir)."""
    repo = Path(__file__).resolve().parents[2]
    root = repo if (repo / "pyproject.toml").exists() else Path.cwd()
    return root / ".cache" / "demo"


def main(argv: list[str] | None = None) -> int:
    """Build the demo; print each stage as it finishes and the total time."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = sys.argv[1:] if argv is None else argv
    force = "--force" in args
    paths = [a for a in args if not a.startswith("--")]
    out_dir = Path(paths[0]) if paths else default_out_dir()

    from t2i_bench.demo.build import build_demo

    def progress(stage: str, fraction: float) -> None:
        if fraction >= 1.0:
            print(f"  done: {stage}", flush=True)

    t0 = time.perf_counter()
    demo = build_demo(out_dir, force=force, progress=progress)
    elapsed = time.perf_counter() - t0
    timings = demo.info.get("timings_s", {})
    for stage, seconds in timings.items():
        print(f"{stage:<32} {seconds:7.1f} s")
    built = "built" if elapsed > 1 else "cached"
    total = demo.info.get("total_s")
    print(f"demo {built} in {elapsed:.1f} s (build took {total} s) -> {demo.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

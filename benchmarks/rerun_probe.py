"""``python -m benchmarks.rerun_probe CONFIG``: ``t2i-bench run CONFIG`` in this process with
each stage timed; prints one JSON line: seconds for the imports and each stage, the process's
total, and the models loaded (``t2i_bench.loads``). Used by :mod:`benchmarks.rerun`."""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def main(config: str) -> None:
    from t2i_bench import runner  # noqa: F401  (imports timed: what a run imports)
    from t2i_bench.cli import app
    from t2i_bench.loads import MODEL_LOADS
    from t2i_bench.report import build

    times = {"imports": time.perf_counter() - STARTED}

    def timed(module, name: str, label: str) -> None:
        real = getattr(module, name)

        @functools.wraps(real)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - start

        setattr(module, name, wrapper)

    for name in ("prepare", "generate", "embed", "score"):
        timed(runner, name, name)
    timed(build, "write_report", "report")
    try:
        app(["run", config], standalone_mode=False)
    except SystemExit:
        pass
    times["total"] = time.perf_counter() - STARTED
    print(json.dumps({"seconds": times, "loads": dict(MODEL_LOADS)}))


if __name__ == "__main__":
    main(sys.argv[1])

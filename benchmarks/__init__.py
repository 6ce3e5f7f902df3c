"""t2i-bench's performance harness: ``python -m benchmarks`` runs each comparison on the same
workload, side by side in one process run, and reports ratios (see ``benchmarks/README.md``).

Comparisons are modules with a ``NAME`` and a ``run(ctx) -> Row``; :data:`COMPARISONS` lists
them in the order they run.
"""

COMPARISONS = (
    "per_metric",
    "floor",
    "incremental",
    "generation",
    "memory",
    "ray_workers",
    "switching",
    "contention",
    "overlap",
    "demo_build",
    "first_run",
    "rerun",
    "gpu_generation",
    "gpu_switching",
)

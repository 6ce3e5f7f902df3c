"""``t2i-bench doctor``: what can be checked before a long run, one line per problem.

Each check returns the problems it found as lines that say what is wrong and how to fix it;
an empty list means the check passed.
"""

from __future__ import annotations

from pathlib import Path

from t2i_bench.compat import conflicts
from t2i_bench.errors import BenchError


def environment_problems() -> list[str]:
    """Known-incompatible package pairs installed together."""
    return conflicts()


def config_problems(config_path: Path) -> list[str]:
    """Everything about a run config that can be checked without loading a model."""
    from t2i_bench.checkpoints import resolve_checkpoints
    from t2i_bench.concepts import load_concept
    from t2i_bench.config import load_config
    from t2i_bench.metrics.base import get_metric
    from t2i_bench.prompts import load_prompt_set

    try:
        config = load_config(config_path)
        for path in config.concepts:
            load_concept(path)
        load_prompt_set(config.prompts.set)
        for name in config.metrics:
            get_metric(name)
        checkpoints = resolve_checkpoints(config)
    except BenchError as exc:
        return [str(exc)]
    return [w for c in checkpoints if c.format == "unreadable" for w in c.warnings]


def diagnose(config_path: Path | None = None) -> list[str]:
    """All problems found: the environment's, then the config's (when given)."""
    problems = environment_problems()
    if config_path is not None:
        problems += config_problems(Path(config_path))
    return problems

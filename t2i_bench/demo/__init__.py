"""The offline demo: a pretrained tiny SD 1.x base model and trained tiny LyCORIS adapters.

``build_demo(out_dir)`` builds (or returns the cached) demo; ``python -m t2i_bench.demo``
builds it into ``.cache/demo``. Imports are lazy: torch and diffusers load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from t2i_bench.demo.build import (
        DemoArtifacts,
        DemoRecipe,
        base_model_hash,
        build_demo,
        load_demo,
    )

__all__ = ["DemoArtifacts", "DemoRecipe", "base_model_hash", "build_demo", "load_demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from t2i_bench.demo import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

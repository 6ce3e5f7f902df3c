"""Built-in metric plugins; importing this package registers them."""

from t2i_bench.metrics.plugins import (  # noqa: F401
    cmmd,
    distribution,
    diversity,
    fidelity,
    leakage,
    perceptual,
    preference,
    preservation,
    quality,
    text_alignment,
)

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

#: The metrics of a config that names none: image fidelity and text alignment.
DEFAULT_METRICS = (fidelity.ClipI.name, text_alignment.ClipT.name)

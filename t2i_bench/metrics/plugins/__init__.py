"""Built-in metric plugins; importing this package registers them."""

from t2i_bench.metrics.plugins import fidelity, text_alignment  # noqa: F401

"""t2i-bench: benchmark customized text-to-image models."""

from t2i_bench.threads import configure_openmp

__version__ = "0.1.0"

configure_openmp()  # before anything imports torch: see t2i_bench/threads.py

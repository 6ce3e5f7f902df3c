"""t2i-bench: benchmark customized text-to-image models."""

__version__ = "0.1.0"

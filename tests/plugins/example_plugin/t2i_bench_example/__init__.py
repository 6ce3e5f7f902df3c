"""An example t2i-bench plugin package (the recipe in docs/architecture.md)."""

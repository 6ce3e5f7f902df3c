"""report stage of t2i-bench."""

"""generation stage of t2i-bench."""

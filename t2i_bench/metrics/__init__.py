"""metrics stage of t2i-bench."""

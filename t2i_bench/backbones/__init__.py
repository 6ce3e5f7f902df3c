"""Backbones: one module per model family; importing this package registers them all."""

from t2i_bench.backbones import clip  # noqa: F401  (registers clip_vit_b32, clip_vit_l14)

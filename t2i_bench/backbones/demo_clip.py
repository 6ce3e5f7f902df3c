"""``clip_demo``: the tiny CLIP pretrained on the demo's procedural world (tiny profile only).

The tiny profile's ``clip_*`` backbones are random, so their numbers exercise the machinery
but mean nothing. The offline quickstart maps the ``clip`` role to this one instead: the same
architecture, trained contrastively on procedural images and captions
(``t2i_bench/demo/clip_pretrain.py``), whose weights are the committed file
``t2i_bench/demo/data/clip_demo.safetensors``. Its identity is static: the architecture, the
preprocessing and the hash of the trained weights recorded in that file (read from the
header only), so a cached rerun loads nothing.
"""

from __future__ import annotations

from typing import Any

from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.backbones.clip import TINY_CLIP_CFG, ClipBackbone
from t2i_bench.errors import BenchError

NAME = "clip_demo"
VERSION = "1"
ARCHITECTURE = f"open_clip CLIP {TINY_CLIP_CFG}"
PREPROCESSING = (
    "RGB; resize shortest side to 64 (bicubic), center crop 64; to [0,1]; normalize "
    "mean=(0.48145466,0.4578275,0.40821073) std=(0.26862954,0.26130258,0.27577711)"
)


def _check(profile: str) -> None:
    if profile != "tiny":
        raise BenchError(
            f"backbone {NAME} is the demo's pretrained tiny CLIP: use it with the 'tiny' "
            f"profile (this run asks for {profile!r}); real runs use clip_vit_l14 or another "
            "published CLIP"
        )


def describe_clip_demo(profile: str = "tiny", **options: Any) -> BackboneSpec:
    """The static spec: the trained weights' hash from the committed file's header."""
    from t2i_bench.demo.clip_pretrain import CLIP_FILE, clip_metadata

    _check(profile)
    weights = clip_metadata(CLIP_FILE)["state_sha256"]
    return BackboneSpec(
        NAME,
        profile,
        VERSION,
        ARCHITECTURE,
        PREPROCESSING,
        f"demo-pretrained sha256={weights[:16]}",
        settings={"weights_sha256": weights},
        description="the tiny CLIP pretrained on the demo's procedural images and captions",
    )


@register_backbone(NAME, describe=describe_clip_demo)
def make_clip_demo(
    profile: str = "tiny", device: str = "cpu", batch_size: int = 32, **options: Any
) -> ClipBackbone:
    """Load the committed demo CLIP (checked against its recorded hash)."""
    import open_clip

    from t2i_bench.demo.clip_pretrain import CLIP_FILE, clip_metadata, load_clip

    _check(profile)
    model = load_clip(CLIP_FILE)
    label = f"demo-pretrained sha256={clip_metadata(CLIP_FILE)['state_sha256'][:16]}"
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    backbone = ClipBackbone(NAME, model, tokenizer, "tiny", label, device, batch_size)
    if backbone.preprocessing != PREPROCESSING:  # the static spec must say what runs
        raise BenchError(f"{NAME}: preprocessing changed to {backbone.preprocessing!r}")
    return backbone

"""Bytes per image each real backbone puts in a run's store, before and after a run drops the
transient embeddings (``BackboneSpec.transient``).

Builds every real architecture at its published size with random weights on the CPU (no
download), wrapped in the project's own backbone classes with the real preprocessing, embeds
a few 512x512 images and stores them in a throw-away run store exactly as the embed stage does.
"After" is what a finished run keeps per generated image (transient ones are dropped once the
values that read them are stored; reference images keep theirs).

    PYTHONPATH=. python scripts/embedding_bytes.py [--images 2]

Needs a few GB of memory (PickScore's ViT-H/14 alone is ~4 GB in float32): one backbone at a
time, freed before the next.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from t2i_bench.backbones.base import Backbone, describe_backbone
from t2i_bench.store import RunStore


def clip_l14() -> Backbone:
    import open_clip

    from t2i_bench.backbones.clip import ClipBackbone

    model = open_clip.create_model("ViT-L-14", pretrained=None)
    return ClipBackbone("clip_vit_l14", model, open_clip.get_tokenizer("ViT-L-14"), "real", "rand")


def dinov2_l14() -> Backbone:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from t2i_bench.backbones.dino import IMAGENET_MEAN, IMAGENET_STD, DinoBackbone

    cfg = Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16)
    cfg.image_size, cfg.patch_size = 518, 14
    proc = BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        resample=3,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    return DinoBackbone("dinov2_vitl14", Dinov2Model(cfg).eval(), proc, "real", "rand")


def dino_s16() -> Backbone:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    from t2i_bench.backbones.dino import IMAGENET_MEAN, IMAGENET_STD, DinoBackbone

    cfg = ViTConfig(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536
    )
    proc = ViTImageProcessor(
        size={"height": 224, "width": 224}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    model = ViTModel(cfg, add_pooling_layer=False).eval()
    return DinoBackbone("dino_vits16", model, proc, "real", "rand")


def inception() -> Backbone:
    from t2i_bench.backbones.inception import (
        InceptionBackbone,
        inception_from_state_dict,
        tiny_inception_state_dict,
    )

    net = inception_from_state_dict(tiny_inception_state_dict())  # 299 px, the real network
    return InceptionBackbone(net, "real", "rand")


def lpips_alex() -> Backbone:
    from t2i_bench.backbones.lpips_net import REAL_SIZE, LPIPSBackbone, build_tiny_lpips

    return LPIPSBackbone(build_tiny_lpips(), REAL_SIZE, "real", "rand")  # AlexNet at 256 px


def vgg19() -> Backbone:
    from torchvision.models.vgg import make_layers

    from t2i_bench.backbones.vgg import REAL_SIZE, VGG19_CFG, VGGGramBackbone

    return VGGGramBackbone(make_layers(VGG19_CFG).eval(), REAL_SIZE, "real", "rand")


def pickscore() -> Backbone:
    from transformers import CLIPConfig, CLIPModel

    from t2i_bench.backbones.pickscore import PickScoreBackbone, tiny_processor

    cfg = CLIPConfig(
        projection_dim=1024,
        text_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                     "num_attention_heads": 16},
        vision_config={"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14},
    )  # fmt: skip
    proc = tiny_processor()
    proc.image_processor.size = {"shortest_edge": 224}
    proc.image_processor.crop_size = {"height": 224, "width": 224}
    return PickScoreBackbone(CLIPModel(cfg).eval(), proc, "real", "rand")


def image_reward() -> Backbone:
    from t2i_bench.backbones.image_reward import (
        ImageRewardBackbone,
        ImageRewardModel,
        text_config,
        tiny_tokenizer,
        vision_config,
    )

    med = {"vocab_size": 30524, "hidden_size": 768, "intermediate_size": 3072,
           "num_hidden_layers": 12, "num_attention_heads": 12,
           "max_position_embeddings": 512}  # fmt: skip
    model = ImageRewardModel(vision_config(1024, 24, 224, 16), text_config(med, 1024)).eval()
    return ImageRewardBackbone(model, tiny_tokenizer(), "real", "rand")


BUILDERS: dict[str, Callable[[], Backbone]] = {
    "clip_vit_l14": clip_l14,
    "dinov2_vitl14": dinov2_l14,
    "dino_vits16": dino_s16,
    "inception_v3_fid": inception,
    "lpips_alex": lpips_alex,
    "vgg19_gram": vgg19,
    "pickscore": pickscore,
    "image_reward": image_reward,
}
DEFAULT_ROLES = [n for n in BUILDERS if n != "dino_vits16"]  # the LyCORIS-paper set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
        for _ in range(args.images)
    ]
    shas = [f"image{i}" for i in range(args.images)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        for name, build in BUILDERS.items():
            start = time.perf_counter()
            backbone = build()
            features = backbone.embed_images(images)
            store.put_embeddings(name, dict(zip(shas, features, strict=True)))
            sizes = store.conn.execute(
                "SELECT length(vector) FROM embeddings WHERE backbone = ?", (name,)
            ).fetchall()
            per_image = sum(s for (s,) in sizes) / len(images)
            transient = describe_backbone(name, "tiny").transient
            rows.append((name, features.shape[1], per_image, transient))
            print(
                f"{name:18s} d={features.shape[1]:7d} {per_image / 1e6:7.3f} MB/image "
                f"{'transient' if transient else 'kept'} ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
            del backbone, features
            gc.collect()
        store.close()
    print("\n| backbone | dim | before: MB per image | after: MB per image |")
    print("|---|---:|---:|---:|")
    for name, dim, size, transient in rows:
        after = 0.0 if transient else size
        print(f"| `{name}` | {dim} | {size / 1e6:.3f} | {after / 1e6:.3f} |")
    before = sum(size for name, _, size, _ in rows if name in DEFAULT_ROLES)
    after = sum(size for name, _, size, t in rows if name in DEFAULT_ROLES and not t)
    print(
        f"| all roles (LyCORIS set: DINOv2, no DINO-S) | | {before / 1e6:.3f} | {after / 1e6:.3f} |"
    )


if __name__ == "__main__":
    main()

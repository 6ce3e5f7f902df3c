"""A short, seeded contrastive pretraining of the tiny CLIP on the demo's procedural world.

The tiny profile's CLIP is random: its image similarities follow colour statistics by
accident and its text similarities mean nothing. The demo's CLIP (backbone ``clip_demo``) is
the same architecture (``backbones/clip.py``'s ``TINY_CLIP_CFG``, initialised from the same
seed) trained CLIP-style on procedural images and their captions ("a red circle on a blue
background"), so that in the quickstart CLIP-I says whether an image shows the concept's
shapes and colours and CLIP-T whether it shows the colours and shapes its prompt asks for.
The demo concept itself (a yellow ring with a purple dot) is not in the training set, as a
real CLIP has not seen a user's concept.

``scripts/build_demo_clip.py`` runs it and commits the result (``CLIP_FILE``), as
``demo/base.py`` does for the base model: the file leaves out the token-embedding rows that
training never touched (taken back from the seeded initialisation on load) and records a
hash of the trained weights that loading checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2i_bench.demo.base import restore_untouched_rows, state_sha256, without_untouched_rows
from t2i_bench.errors import BenchError

if TYPE_CHECKING:
    import torch

CLIP_FILE = Path(__file__).with_name("data") / "clip_demo.safetensors"
FORMAT_VERSION = "1"
_ROWS, _IDS = "<token_rows>", "<token_ids>"
EMBEDDING_KEY = "token_embedding.weight"


@dataclass(frozen=True)
class ClipRecipe:
    """Everything that determines the demo CLIP's weights."""

    seed: int = 0
    data_seed: int = 7  # another draw of the procedural world than the base model's
    num_images: int = 2048
    steps: int = 500
    batch_size: int = 128
    lr: float = 2e-3
    # results depend (slightly) on the thread count, so it is fixed
    num_threads: int = 1


Progress = Callable[[float], None]


def pretrain_clip(recipe: ClipRecipe, progress: Progress | None = None) -> torch.nn.Module:
    """The tiny CLIP trained contrastively on procedural images and captions (returned in
    eval mode). Captions repeat across images, so the targets are soft: every image in a
    batch with the same caption is a positive."""
    import open_clip
    import torch
    import torch.nn.functional as F

    from t2i_bench.backbones.clip import build_tiny_clip
    from t2i_bench.demo.procedural import procedural_dataset

    before = torch.get_num_threads()
    torch.set_num_threads(recipe.num_threads)
    try:
        model = build_tiny_clip()
        tokenizer = open_clip.get_tokenizer("ViT-B-32")
        transform = eval_transform(model)
        images, captions = procedural_dataset(recipe.num_images, recipe.data_seed)
        pixels = torch.stack([transform(im) for im in images])
        unique = sorted(set(captions))
        row = {c: i for i, c in enumerate(unique)}
        caption_ids = torch.tensor([row[c] for c in captions])
        tokens = tokenizer(unique)
        embedding = model.token_embedding.weight
        params = [p for p in model.parameters() if p is not embedding]
        groups = [
            {"params": params, "weight_decay": 0.05},
            {"params": [embedding], "weight_decay": 0.0},  # untouched rows stay at their init
        ]
        opt = torch.optim.AdamW(groups, lr=recipe.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=recipe.lr, total_steps=recipe.steps, pct_start=0.1
        )
        gen = torch.Generator().manual_seed(recipe.seed)
        model.train()
        for step in range(recipe.steps):
            idx = torch.randperm(len(pixels), generator=gen)[: recipe.batch_size]
            ids = caption_ids[idx]
            image = F.normalize(model.encode_image(pixels[idx]), dim=-1)
            text = F.normalize(model.encode_text(tokens[ids]), dim=-1)
            logits = model.logit_scale.exp() * image @ text.T
            same = (ids[:, None] == ids[None, :]).float()
            targets = same / same.sum(dim=1, keepdim=True)
            loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)  # at most 100, as open_clip training
            if progress:
                progress((step + 1) / recipe.steps)
    finally:
        torch.set_num_threads(before)
    model.eval()
    model.requires_grad_(False)
    return model


def eval_transform(model: torch.nn.Module) -> Callable[[Any], torch.Tensor]:
    """The backbone's eval preprocessing (open_clip's, at the model's image size)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def save_clip(model: torch.nn.Module, path: Path, recipe: ClipRecipe, extra: dict[str, str]):
    """Write the trained CLIP without its untouched token rows; check it loads back exactly."""
    from safetensors.torch import save_file

    from t2i_bench.backbones.clip import build_tiny_clip

    state = model_state(model)
    initial = model_state(build_tiny_clip())[EMBEDDING_KEY]
    kept = without_untouched_rows(state, initial, EMBEDDING_KEY, _IDS, _ROWS)
    metadata = {
        "format": f"t2i-bench demo clip {FORMAT_VERSION}",
        "recipe": json.dumps(asdict(recipe), sort_keys=True),
        "state_sha256": state_sha256(state),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(path), metadata=metadata)
    if state_sha256(model_state(load_clip(path))) != metadata["state_sha256"]:
        raise BenchError("the saved demo CLIP does not load back to the trained weights", path)
    return metadata


def clip_metadata(path: Path = CLIP_FILE) -> dict[str, str]:
    """The file's metadata (recipe, hash of the trained weights, versions)."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise BenchError("demo CLIP weights missing: run scripts/build_demo_clip.py", path)
    with safe_open(str(path), "numpy") as handle:
        return dict(handle.metadata() or {})


def load_clip(path: Path = CLIP_FILE) -> torch.nn.Module:
    """The pretrained demo CLIP, checked against the hash of the trained weights."""
    from safetensors.torch import load_file

    from t2i_bench.backbones.clip import build_tiny_clip

    metadata = clip_metadata(path)
    if metadata.get("format") != f"t2i-bench demo clip {FORMAT_VERSION}":
        raise BenchError(f"not a demo CLIP file (format {metadata.get('format')!r})", path)
    stored = load_file(str(path))
    model = build_tiny_clip()
    restore_untouched_rows(stored, model.token_embedding.weight, EMBEDDING_KEY, _IDS, _ROWS)
    if set(stored) != set(model.state_dict()):
        raise BenchError("demo CLIP file does not fit the tiny CLIP's layout", path)
    model.load_state_dict(stored, strict=True)
    model.eval().requires_grad_(False)
    if state_sha256(model_state(model)) != metadata["state_sha256"]:
        raise BenchError(
            "demo CLIP does not reproduce the trained weights (its untrained rows come from "
            "torch's seeded initialisation: another torch version?); rebuild it with "
            "scripts/build_demo_clip.py",
            path,
        )
    return model

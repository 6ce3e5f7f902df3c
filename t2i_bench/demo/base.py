"""The demo's pretrained tiny base model, committed as one small file.

``scripts/build_demo_base.py`` pretrains the tiny SD 1.x (``pretrain_base``: procedural
images, VAE then UNet + text encoder, about two minutes on one core) and writes it with
``save_base``; ``t2i-bench demo`` loads it (``load_base``) instead of pretraining, so that a
first run trains only the adapters.

The file holds every weight of the UNet, the VAE and the text encoder in float32, except
the rows of the token embedding that pretraining never touched (nearly all of CLIP's 49,408
tokens; the captions use a few dozen): pretraining leaves those rows exactly at their seeded
initial values (no gradient, no weight decay), so ``load_base`` takes them from
``build_tiny_components(seed)``. That keeps the file at about 4 MB instead of 11, and the
loaded model is checked, tensor by tensor, against a hash of the trained one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2i_bench.errors import BenchError

if TYPE_CHECKING:
    import torch

BASE_FILE = Path(__file__).with_name("data") / "base.safetensors"
FORMAT_VERSION = "1"
_MODULES = ("unet", "vae", "text_encoder")
_ROWS, _IDS = "text_encoder.<token_rows>", "text_encoder.<token_ids>"


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that determines the pretrained base's weights."""

    seed: int = 0
    num_images: int = 1024
    vae_steps: int = 700
    unet_steps: int = 500
    unet_batch_size: int = 16
    # results depend (slightly) on the thread count, so it is fixed
    num_threads: int = 1


Progress = Callable[[str, float], None]


def pretrain_base(recipe: BaseRecipe, progress: Progress | None = None) -> dict[str, Any]:
    """Tiny components pretrained on procedural images (what ``save_base`` stores)."""
    import torch

    from t2i_bench.demo.pretrain import (
        calibrate_scaling_factor,
        encode_images,
        train_text_to_image,
        train_vae,
    )
    from t2i_bench.demo.procedural import procedural_dataset, to_tensor
    from t2i_bench.generation.tiny import build_tiny_components

    report = progress or (lambda stage, fraction: None)
    before = torch.get_num_threads()
    torch.set_num_threads(recipe.num_threads)
    try:
        components = build_tiny_components(recipe.seed)
        images, captions = procedural_dataset(recipe.num_images, recipe.seed)
        pixels = to_tensor(images)
        vae = components["vae"]
        train_vae(vae, pixels, recipe.vae_steps, recipe.seed, on_step=lambda f: report("vae", f))
        calibrate_scaling_factor(vae, pixels)
        mean, std = encode_images(vae, pixels)
        train_text_to_image(
            components["unet"],
            components["text_encoder"],
            components["tokenizer"],
            mean,
            std,
            captions,
            recipe.unet_steps,
            recipe.seed,
            batch_size=recipe.unet_batch_size,
            on_step=lambda f: report("unet", f),
        )
    finally:
        torch.set_num_threads(before)
    return components


def _embedding_key(state: dict[str, torch.Tensor]) -> str:
    (key,) = [k for k in state if k.endswith("token_embedding.weight")]
    return key


def module_state(components: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor of the UNet, VAE and text encoder, as ``<module>.<state dict key>``."""
    return {
        f"{name}.{key}": tensor.detach().contiguous()
        for name in _MODULES
        for key, tensor in components[name].state_dict().items()
    }


def without_untouched_rows(
    state: dict[str, torch.Tensor], initial: torch.Tensor, key: str, ids: str, rows: str
) -> dict[str, torch.Tensor]:
    """``state`` to save, with the rows of the embedding ``key`` that still equal ``initial``
    (their seeded values) left out: the others under ``rows``, their indices under ``ids``."""
    import torch

    changed = (state[key] != initial).any(dim=1).nonzero().flatten()
    kept = {k: v for k, v in state.items() if k != key}
    kept[ids] = changed.to(torch.int64)
    kept[rows] = state[key][changed].contiguous()
    return kept


def restore_untouched_rows(
    stored: dict[str, torch.Tensor], initial: torch.Tensor, key: str, ids: str, rows: str
) -> None:
    """Undo :func:`without_untouched_rows` in ``stored``: the embedding ``key`` is ``initial``
    with the saved rows put back."""
    embedding = initial.detach().clone()
    embedding[stored.pop(ids)] = stored.pop(rows)
    stored[key] = embedding


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash over tensor names, dtypes, shapes and bytes (independent of the file layout)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def save_base(
    components: dict[str, Any], path: Path, recipe: BaseRecipe, extra: dict[str, str]
) -> dict[str, str]:
    """Write the pretrained components to ``path`` (see the module docstring); returns the
    file's metadata. Fails if a row it leaves out differs from its seeded initial value."""
    from safetensors.torch import save_file

    from t2i_bench.generation.tiny import build_tiny_components

    state = module_state(components)
    initial = module_state(build_tiny_components(recipe.seed))
    key = _embedding_key(state)
    kept = without_untouched_rows(state, initial[key], key, _IDS, _ROWS)
    metadata = {
        "format": f"t2i-bench demo base {FORMAT_VERSION}",
        "recipe": json.dumps(asdict(recipe), sort_keys=True),
        "vae_scaling_factor": repr(components["vae"].config.scaling_factor),
        "state_sha256": state_sha256(state),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(path), metadata=metadata)
    loaded = load_base(path)  # the round trip must give back exactly the trained model
    if state_sha256(module_state(loaded)) != metadata["state_sha256"]:
        raise BenchError("the saved base does not load back to the trained weights", path)
    return metadata


def base_metadata(path: Path = BASE_FILE) -> dict[str, str]:
    """The base file's metadata (recipe, hashes, versions)."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise BenchError("demo base model missing: run scripts/build_demo_base.py", path)
    with safe_open(str(path), "numpy") as handle:  # reads the header only, without torch
        return dict(handle.metadata() or {})


def load_base(path: Path = BASE_FILE) -> dict[str, Any]:
    """The pretrained tiny components (``build_tiny_components``' layout), checked against
    the hash of the trained weights recorded in the file."""
    from safetensors.torch import load_file

    from t2i_bench.generation.tiny import build_tiny_components

    metadata = base_metadata(path)
    if metadata.get("format") != f"t2i-bench demo base {FORMAT_VERSION}":
        raise BenchError(f"not a demo base file (format {metadata.get('format')!r})", path)
    recipe = BaseRecipe(**json.loads(metadata["recipe"]))
    stored = load_file(str(path))
    components = build_tiny_components(recipe.seed)
    state = module_state(components)
    key = _embedding_key(state)
    restore_untouched_rows(stored, state[key], key, _IDS, _ROWS)
    if set(stored) != set(state):
        raise BenchError("demo base file does not fit the tiny model's layout", path)
    for name in _MODULES:
        prefix = f"{name}."
        part = {k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)}
        components[name].load_state_dict(part, strict=True)
        components[name].requires_grad_(False)
    components["vae"].register_to_config(scaling_factor=float(metadata["vae_scaling_factor"]))
    if state_sha256(module_state(components)) != metadata["state_sha256"]:
        raise BenchError(
            "demo base model does not reproduce the trained weights (its untrained rows come "
            "from torch's seeded initialisation: another torch version?); rebuild it with "
            "scripts/build_demo_base.py",
            path,
        )
    return components

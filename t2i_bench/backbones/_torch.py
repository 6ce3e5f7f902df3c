"""Shared machinery for torch backbones: seeded construction, batching, forward counting."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from t2i_bench.backbones._files import brief
from t2i_bench.backbones.base import Backbone
from t2i_bench.errors import BenchError

TINY_SEED = 20240117  # every tiny builder is initialised from this seed (one per backbone family)
PROFILES = ("tiny", "real")


@contextlib.contextmanager
def seeded(seed: int = TINY_SEED) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_profile(name: str, profile: str) -> None:
    if profile not in PROFILES:
        raise BenchError(f"backbone {name}: unknown profile {profile!r}; use 'tiny' or 'real'")


def env_source(var: str, default: str | None) -> str | None:
    """A weights location from the environment variable ``var`` (a local path or hub id)."""
    value = os.environ.get(var, "").strip()
    return value or default


def weights_label(source: str) -> str:
    """A stable label for a weights source: the tag/hub id itself, or a file's name and size."""
    path = os.path.expanduser(source)
    if os.path.isfile(path):
        return f"file:{os.path.basename(path)}:{os.path.getsize(path)}"
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if not f.startswith("."))
        size = sum(os.path.getsize(os.path.join(path, f)) for f in files)
        return f"dir:{os.path.basename(os.path.normpath(path))}:{size}"
    return source


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device out-of-memory error (CUDA's, or the RuntimeError other backends
    raise)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def halving_on_oom(
    run: Callable[[Sequence], np.ndarray], items: Sequence
) -> Iterator[tuple[int, int, np.ndarray | str]]:
    """``run(items)``; when it runs out of device memory, each half again, down to single
    items. Yields ``(start, stop, features)`` for each part done, or ``(start, stop, error)``
    for a single item that does not fit even alone; other errors propagate."""

    def part(lo: int, hi: int) -> Iterator[tuple[int, int, np.ndarray | str]]:
        try:
            result = run(items[lo:hi])
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            release_cached_memory()
            if hi - lo == 1:
                yield lo, hi, f"out of memory even alone ({brief(exc)})"
                return
            mid = (lo + hi) // 2
            yield from part(lo, mid)
            yield from part(mid, hi)
            return
        yield lo, hi, result

    if items:
        yield from part(0, len(items))


def to_rgb(images: Sequence[Image.Image]) -> list[Image.Image]:
    return [im if im.mode == "RGB" else im.convert("RGB") for im in images]


def pad_chunk(chunk: Sequence, size: int) -> list:
    """``chunk`` padded to ``size`` items with copies of its last item."""
    chunk = list(chunk)
    return chunk + [chunk[-1]] * (size - len(chunk)) if chunk else chunk


def batched_forward(
    items: Sequence,
    batch_size: int,
    prepare: Callable[[Sequence], torch.Tensor | dict[str, torch.Tensor]],
    forward: Callable[..., torch.Tensor],
    on_batch: Callable[[], None],
) -> np.ndarray:
    """Apply ``forward(prepare(chunk))`` to chunks of ``items``; concatenate as float32 numpy.

    Every chunk holds exactly ``batch_size`` items (the last one padded with copies of its
    last item, whose outputs are dropped): batched kernels round differently at another
    batch size, and an embedding must not depend on how many others were missing with it."""
    if batch_size < 1:
        raise BenchError(f"batch_size must be >= 1, got {batch_size}")
    outs: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = pad_chunk(items[start : start + batch_size], batch_size)
            inputs = prepare(chunk)
            out = forward(**inputs) if isinstance(inputs, dict) else forward(inputs)
            on_batch()
            kept = min(batch_size, len(items) - start)
            outs.append(out.detach().float().cpu().numpy()[:kept])
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outs, axis=0).astype(np.float32, copy=False)


class TorchBackbone(Backbone):
    """A backbone wrapping a torch module; subclasses implement ``_prepare`` and ``_forward``."""

    feature_dim: int = 0
    weights: str = ""  # which weights: a published tag/hub id, a local file, or "seed=<n>" (tiny)

    @property
    def identity(self) -> str:
        """The spec's identity once loaded through load_backbone; otherwise name, profile,
        preprocessing, version and the weights' label."""
        if self.spec is not None:
            return self.spec.identity
        return f"{super().identity}|{self.weights}"

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.forward_calls = 0

    def _count(self) -> None:
        self.forward_calls += 1

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """One batch of images through the model, as :meth:`embed_images` runs it: inputs
        prepared on the CPU, moved to the model's device, features left there (tests run it
        on the ``meta`` device to catch tensors left on another device)."""
        with torch.inference_mode():
            return self._forward_images(self._prepare_images(to_rgb(images)))

    def _prepare_texts(self, texts: Sequence[str]) -> torch.Tensor | dict[str, torch.Tensor]:
        raise NotImplementedError(f"backbone {self.name} has no text encoder")

    def _forward_texts(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"backbone {self.name} has no text encoder")

    def forward_text_batch(self, texts: Sequence[str]) -> torch.Tensor:
        """One batch of texts through the text encoder, as :meth:`embed_texts` runs it."""
        with torch.inference_mode():
            inputs = self._prepare_texts(list(texts))
            if isinstance(inputs, dict):
                return self._forward_texts(**inputs)
            return self._forward_texts(inputs)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return an (n, d) float32 array of image features (not normalised)."""
        if len(images) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return batched_forward(
            to_rgb(images),
            self.batch_size,
            self._prepare_images,
            self._forward_images,
            self._count,
        )


# ------------------------------------------------------------------- Hugging Face helpers

_PROCESSOR_KEYS = (
    "do_convert_rgb",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.8g}"
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(_fmt(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_fmt(v)}" for k, v in value.items() if v is not None) + "}"
    name = getattr(value, "name", None)  # PIL Resampling enum
    return str(name) if name is not None else str(value)


def describe_hf_processor(processor: object) -> str:
    """A stable description of a transformers image processor's eval preprocessing."""
    cfg = processor.to_dict()  # type: ignore[attr-defined]
    parts = [type(processor).__name__]
    parts += [f"{k}={_fmt(cfg[k])}" for k in _PROCESSOR_KEYS if k in cfg and cfg[k] is not None]
    return "; ".join(parts)


def hf_load(loader: Callable[..., object], source: str, what: str, **kwargs: object) -> object:
    """``loader(source)`` (a ``from_pretrained``) with a one-line error when it is unavailable."""
    try:
        return loader(os.path.expanduser(source), **kwargs)
    except Exception as exc:  # OSError / ValueError / hub errors
        raise BenchError(
            f"cannot load {what} from {source!r} ({brief(exc, 300)}); "
            "download it into the Hugging Face cache or pass a local directory"
        ) from exc

"""Apply and remove adapter files on one loaded pipeline (LyCORIS / kohya format).

Adapters wrap module forwards (lycoris-lora's kohya network); removing one restores the
original forwards, so the pipeline returns bitwise to the base model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from t2i_bench.errors import BenchError

_PREFIXES = ("lora_unet", "lora_te")


def _text_encoders(pipe) -> list:
    encoders = [pipe.text_encoder]
    if getattr(pipe, "text_encoder_2", None) is not None:
        encoders.append(pipe.text_encoder_2)
    return encoders


def _module_names(pipe) -> set[str]:
    """Every kohya-style module name the pipeline exposes (``lora_unet_…``, ``lora_te…``)."""
    names = {f"lora_unet_{n}".replace(".", "_") for n, _ in pipe.unet.named_modules()}
    encoders = _text_encoders(pipe)
    for i, encoder in enumerate(encoders):
        prefix = "lora_te" if len(encoders) == 1 else f"lora_te{i + 1}"
        names |= {f"{prefix}_{n}".replace(".", "_") for n, _ in encoder.named_modules()}
    return names


def adapter_module_names(weights: dict[str, torch.Tensor]) -> set[str]:
    return {k.split(".")[0] for k in weights if "." in k and k.startswith(_PREFIXES)}


class AdapterSwitcher:
    """Holds one pipeline and at most one active adapter."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.network = None
        self.active: Path | None = None
        self._names = _module_names(pipe)

    def apply(self, path: Path, multiplier: float = 1.0) -> None:
        """Load ``path`` onto the pipeline (removing any active adapter first)."""
        import lycoris.kohya as lycoris_kohya

        self.remove()
        try:
            weights = load_file(str(path))
        except Exception as exc:
            raise BenchError(f"not a readable safetensors file ({exc})", path) from None
        wanted = adapter_module_names(weights)
        matched = wanted & self._names
        if not wanted or len(matched) < len(wanted):
            raise BenchError(
                f"adapter does not fit the base model: {len(matched)} of {len(wanted)} "
                f"modules matched, {len(wanted) - len(matched)} unmatched "
                f"(e.g. {sorted(wanted - matched)[:1]})",
                path,
            )
        encoders = _text_encoders(self.pipe)
        text_encoder = encoders[0] if len(encoders) == 1 else encoders
        level = logging.getLogger("LyCORIS").level
        logging.getLogger("LyCORIS").setLevel(logging.ERROR)
        try:
            network, _ = lycoris_kohya.create_network_from_weights(
                multiplier, str(path), None, text_encoder, self.pipe.unet, weights_sd=weights
            )
            uses_te = any(k.startswith("lora_te") for k in wanted)
            uses_unet = any(k.startswith("lora_unet") for k in wanted)
            network.apply_to(text_encoder, self.pipe.unet, uses_te, uses_unet)
        finally:
            logging.getLogger("LyCORIS").setLevel(level)
        device = self.pipe.unet.device
        dtype = self.pipe.unet.dtype
        network.to(device=device, dtype=dtype)
        self.network = network
        self.active = path

    def remove(self) -> None:
        """Restore the original forwards: the pipeline is the base model again."""
        if self.network is not None:
            self.network.restore()
        self.network = None
        self.active = None

"""Apply and remove checkpoints on one loaded pipeline, so the pipeline is loaded once.

LyCORIS/kohya files wrap module forwards (lycoris-lora's kohya network), diffusers/PEFT LoRAs
go through diffusers' loader, textual inversions add tokens, full fine-tunes swap weights
from a kept base copy. Removing any of them returns the pipeline bitwise to the base model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from t2i_bench.compat import require_compatible
from t2i_bench.errors import BenchError
from t2i_bench.generation.formats import (
    Format,
    detect_format,
    load_state_dict,
    textual_inversion_token,
)
from t2i_bench.generation.kohya_names import rename_ldm_keys

_PREFIXES = ("lora_unet", "lora_te")
_EMPTY_PRESET = {
    "unet_target_module": [],
    "unet_target_name": [],
    "text_encoder_target_module": [],
    "text_encoder_target_name": [],
}


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
    """Holds one pipeline and at most one active checkpoint of any supported format."""

    def __init__(self, pipe, base_source: str | None = None, allow_pickle: bool = False) -> None:
        self.pipe = pipe
        self.base_source = base_source
        self.allow_pickle = allow_pickle
        self.network = None
        self.active: Path | None = None
        self._undo: list = []
        self._names = _module_names(pipe)
        self._base_weights: dict[str, dict[str, torch.Tensor]] = {}

    def apply(self, path: Path, multiplier: float = 1.0, token: str | None = None) -> None:
        """Load ``path`` onto the pipeline (removing any active checkpoint first)."""
        self.remove()
        path = Path(path)
        fmt = detect_format(path, self.allow_pickle)
        if multiplier == 0.0 and fmt is not Format.TEXTUAL_INVERSION:
            self.active = path  # weight 0 is the base model exactly (DoRA would renormalise)
            return
        if fmt is Format.LYCORIS:
            self._apply_lycoris(path, multiplier)
        elif fmt is Format.DIFFUSERS_LORA:
            self._apply_diffusers_lora(path, multiplier)
        elif fmt is Format.TEXTUAL_INVERSION:
            self._apply_textual_inversion(path, token)
        else:
            self._apply_full(path, fmt, multiplier)
        self.active = path

    def remove(self) -> None:
        """Undo the active checkpoint: the pipeline is the base model again, bitwise."""
        while self._undo:
            self._undo.pop()()
        self.network = None
        self.active = None

    # -- LyCORIS / kohya -----------------------------------------------------------------
    def _apply_lycoris(self, path: Path, multiplier: float) -> None:
        import lycoris.kohya as lycoris_kohya

        weights = rename_ldm_keys(load_state_dict(path, self.allow_pickle), self.pipe.unet)
        weights = self._match_text_model_level(weights)
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
        logger = logging.getLogger("LyCORIS")
        level = logger.level
        logger.setLevel(logging.ERROR)
        uses_te = any(k.startswith("lora_te") for k in wanted)
        uses_unet = any(k.startswith("lora_unet") for k in wanted)
        # create_network_from_weights first builds a throwaway network from the class-level
        # preset (global state that training code mutates; lycoris-lora 4.1's default wraps
        # time_embedding.linear_1 twice on diffusers UNets and asserts). An empty preset makes
        # that step build nothing, so loading never depends on what ran before.
        lycoris_kohya.LycorisNetworkKohya.apply_preset(_EMPTY_PRESET)
        try:
            network, _ = lycoris_kohya.create_network_from_weights(
                multiplier, str(path), None, text_encoder, self.pipe.unet, weights_sd=weights
            )
            network.apply_to(text_encoder, self.pipe.unet, uses_te, uses_unet)
        except Exception as exc:  # lycoris-lora cannot infer some modules from weights alone
            network = self._rebuild_from_metadata(path, weights, multiplier, exc)
            network.apply_to(text_encoder, self.pipe.unet, uses_te, uses_unet)
            try:
                network.load_state_dict(weights, strict=True)
            except RuntimeError:
                network.restore()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise BenchError(f"lycoris-lora cannot load this file ({first})", path) from None
        finally:
            logger.setLevel(level)
        network.to(device=self.pipe.unet.device, dtype=self.pipe.unet.dtype)
        self.network = network
        self._undo.append(network.restore)

    def _match_text_model_level(self, weights: dict) -> dict:
        """kohya files name text-encoder modules ``lora_te_text_model_encoder_…`` (transformers
        4's ``CLIPTextModel.text_model``); transformers 5 has no ``text_model`` level. Drop or
        add it so the names match this pipeline's modules."""
        renamed = {}
        for key, value in weights.items():
            module, dot, rest = key.partition(".")
            if module.startswith("lora_te") and module not in self._names:
                prefix, sep, tail = module.partition("_text_model_")
                if sep and f"{prefix}_{tail}" in self._names:
                    module = f"{prefix}_{tail}"
                elif not sep:
                    head, _, name = module.partition("_")
                    candidate = f"{head}_text_model_{name}"
                    module = candidate if candidate in self._names else module
            renamed[f"{module}{dot}{rest}"] = value
        return renamed

    def _rebuild_from_metadata(self, path: Path, weights, multiplier: float, error: Exception):
        """Build the network from its kohya ``ss_network_*`` metadata, as training did."""
        import lycoris.kohya as lycoris_kohya

        from t2i_bench.checkpoints import read_safetensors_metadata

        meta = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
        if "ss_network_args" not in meta:
            raise BenchError(f"lycoris-lora cannot load this file ({error})", path) from None
        try:
            args = json.loads(meta["ss_network_args"])
            dim = int(float(meta.get("ss_network_dim", 4)))
            alpha = float(meta.get("ss_network_alpha", dim))
        except (ValueError, TypeError) as exc:
            raise BenchError(f"unusable ss_network_* metadata ({exc})", path) from None
        encoders = _text_encoders(self.pipe)
        text_encoder = encoders[0] if len(encoders) == 1 else encoders
        network = lycoris_kohya.create_network(
            multiplier, dim, alpha, None, text_encoder, self.pipe.unet, **args
        )
        for lora in network.text_encoder_loras + network.unet_loras:
            lora.multiplier = multiplier
        return network

    # -- diffusers / PEFT LoRA -----------------------------------------------------------
    def _apply_diffusers_lora(self, path: Path, multiplier: float) -> None:
        require_compatible("peft_lora", path)
        weights = load_state_dict(path, self.allow_pickle)
        try:
            self.pipe.load_lora_weights(weights, adapter_name="t2i_bench")
        except Exception as exc:
            self.pipe.unload_lora_weights()
            raise BenchError(f"diffusers LoRA does not fit the base model: {exc}", path) from None
        self._undo.append(self.pipe.unload_lora_weights)
        self.pipe.set_adapters(["t2i_bench"], adapter_weights=[multiplier])

    # -- textual inversion ---------------------------------------------------------------
    def _apply_textual_inversion(self, path: Path, token: str | None) -> None:
        weights = load_state_dict(path, self.allow_pickle)
        token = textual_inversion_token(path, list(weights), token)
        tensor = next(iter(v for k, v in weights.items() if k != "name"))
        try:
            self.pipe.load_textual_inversion({token: tensor}, token=token)
        except Exception as exc:
            raise BenchError(f"embedding does not fit the text encoder: {exc}", path) from None
        self._undo.append(lambda: self.pipe.unload_textual_inversion(token))

    # -- full fine-tunes (DreamBooth, native fine-tuning) --------------------------------
    def _apply_full(self, path: Path, fmt: Format, multiplier: float) -> None:
        tuned = load_full_components(path, fmt, self.base_source)
        for name, state in tuned.items():
            module = getattr(self.pipe, name, None)
            if module is None:
                continue
            if name not in self._base_weights:  # one CPU copy of the base, kept for restores
                self._base_weights[name] = {
                    k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()
                }
            base = self._base_weights[name]
            if set(state) != set(base) or any(state[k].shape != base[k].shape for k in base):
                matched = sum(1 for k in base if k in state and state[k].shape == base[k].shape)
                raise BenchError(
                    f"{name} does not fit the base model: {matched} of {len(base)} tensors "
                    f"matched, {len(state) - matched} unmatched",
                    path,
                )
            if multiplier != 1.0:
                state = {k: base[k] + multiplier * (state[k].to(base[k]) - base[k]) for k in base}
            module.load_state_dict(state)
            self._undo.append(lambda m=module, b=base: m.load_state_dict(b))


def load_full_components(path: Path, fmt: Format, base_source: str | None):
    """State dicts of the UNet and text encoder(s) of a full fine-tune."""
    import diffusers

    from t2i_bench.generation.pipeline import quiet_loaders

    quiet_loaders()
    kwargs = {"local_files_only": True}
    try:
        if fmt is Format.FULL_DIFFUSERS:
            pipe = diffusers.DiffusionPipeline.from_pretrained(
                str(path), safety_checker=None, **kwargs
            )
        else:
            config = base_source if base_source and Path(base_source).is_dir() else None
            pipe = diffusers.StableDiffusionPipeline.from_single_file(
                str(path), config=config, safety_checker=None, **kwargs
            )
    except BenchError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot load full model: {first}", path) from None
    names = ("unet", "text_encoder", "text_encoder_2")
    return {n: getattr(pipe, n).state_dict() for n in names if getattr(pipe, n, None) is not None}

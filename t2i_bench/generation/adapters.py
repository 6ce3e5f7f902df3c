"""Apply and remove checkpoints on one loaded pipeline, so the pipeline is loaded once.

LyCORIS/kohya files wrap module forwards (lycoris-lora's kohya network), diffusers LoRA files
go through diffusers' loader, PEFT adapters through PEFT's tuners, textual inversions add
tokens, full fine-tunes (diffusers folders, DreamBooth ``checkpoint-N/`` folders, single
files) swap weights from a kept base copy. Removing any of them returns the pipeline bitwise
to the base model.
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
    checkpoint_components,
    detect_format,
    load_state_dict,
    lora_weights_file,
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

    def __init__(
        self,
        pipe,
        base_source: str | None = None,
        allow_pickle: bool = False,
        config_source: str | None = None,
    ) -> None:
        self.pipe = pipe
        self.base_source = base_source
        self.config_source = config_source  # configs for single-file fine-tunes
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
        elif fmt is Format.PEFT:
            from t2i_bench.generation.peft_adapter import apply_peft

            self._undo.append(apply_peft(self.pipe, path, multiplier, self.allow_pickle))
        elif fmt is Format.TEXTUAL_INVERSION:
            from t2i_bench.generation.textual_inversion import apply_embedding

            _, undo = apply_embedding(self.pipe, path, token, self.allow_pickle)
            self._undo.append(undo)
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

    # -- diffusers LoRA ------------------------------------------------------------------
    def _apply_diffusers_lora(self, path: Path, multiplier: float) -> None:
        """``pytorch_lora_weights.safetensors`` (or the folder holding it) with ``unet.``,
        ``text_encoder.`` and ``text_encoder_2.`` keys; every module must be applied."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        require_compatible("peft_lora", path)
        file = lora_weights_file(path) if path.is_dir() else path
        weights = load_state_dict(file, self.allow_pickle)
        marks = (".lora_A.", ".lora.down.", "lora_linear_layer.down.")
        wanted = sum(1 for k in weights if any(m in k for m in marks))
        try:
            self.pipe.load_lora_weights(weights, adapter_name="t2i_bench")
        except Exception as exc:
            self.pipe.unload_lora_weights()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BenchError(f"diffusers LoRA does not fit the base model: {first}", file) from None
        self._undo.append(self.pipe.unload_lora_weights)
        applied = sum(
            1
            for name in ("unet", "text_encoder", "text_encoder_2")
            if getattr(self.pipe, name, None) is not None
            for m in getattr(self.pipe, name).modules()
            if isinstance(m, BaseTunerLayer) and "t2i_bench" in getattr(m, "lora_A", {})
        )
        if applied < wanted:
            self.remove()
            raise BenchError(
                f"diffusers LoRA does not fit the base model: {applied} of {wanted} modules "
                "matched",
                file,
            )
        self.pipe.set_adapters(["t2i_bench"], adapter_weights=[multiplier])

    # -- full fine-tunes (DreamBooth, native fine-tuning) --------------------------------
    def _apply_full(self, path: Path, fmt: Format, multiplier: float) -> None:
        tuned = load_full_components(self.pipe, path, fmt, self._single_file_config())
        for name, state in tuned.items():
            module = getattr(self.pipe, name, None)
            if module is None:
                raise BenchError(f"the base model has no {name} for this fine-tune", path)
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

    def _single_file_config(self) -> str | None:
        """Where a single-file fine-tune's configs come from: base_model.config, else the
        base model's own diffusers folder or hub id."""
        if self.config_source:
            return self.config_source
        source = self.base_source
        if source and source != "tiny" and not Path(source).is_file():
            return source
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def load_full_components(pipe, path: Path, fmt: Format, config: str | None) -> dict:
    """State dicts of the UNet and text encoder(s) of a full fine-tune, by component name.

    A diffusers folder is loaded whole; a ``checkpoint-N/`` folder per component with the
    base pipeline's classes (its optimizer and random states are never read); a single file
    with the configs of its family (``config``, else the family's reference repository).
    """
    import diffusers

    from t2i_bench.generation.base_model import single_file_config, single_file_family
    from t2i_bench.generation.pipeline import quiet_loaders

    quiet_loaders()
    names = ("unet", "text_encoder", "text_encoder_2")
    try:
        if fmt is Format.DIFFUSERS_CHECKPOINT:
            out = {}
            for name, folder in checkpoint_components(path).items():
                base = getattr(pipe, name, None)
                if base is None:
                    raise BenchError(f"the base model has no {name} for this checkpoint", path)
                model = type(base).from_pretrained(str(folder), local_files_only=True)
                out[name] = model.state_dict()
            return out
        if fmt is Format.FULL_DIFFUSERS:
            tuned = diffusers.DiffusionPipeline.from_pretrained(
                str(path), local_files_only=True, **_no_safety_checker(path)
            )
        else:
            family = single_file_family(path)
            prediction = getattr(pipe.scheduler.config, "prediction_type", None)
            folder = single_file_config(path, family, config, prediction)
            cls = getattr(
                diffusers,
                "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline",
            )
            kwargs = {} if family == "sdxl" else {"safety_checker": None}
            tuned = cls.from_single_file(
                str(path), config=str(folder), local_files_only=True, **kwargs
            )
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"cannot load full model: {_first_line(exc)}", path) from None
    return {n: getattr(tuned, n).state_dict() for n in names if getattr(tuned, n, None) is not None}


def _no_safety_checker(path: Path) -> dict:
    from t2i_bench.generation.base_model import pipeline_class_name

    name = pipeline_class_name(path)
    return {"safety_checker": None} if name == "StableDiffusionPipeline" else {}

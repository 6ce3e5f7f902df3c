"""PEFT adapters (``save_pretrained`` output) onto a pipeline's components, and off again.

PEFT writes ``adapter_config.json`` (type, rank, alpha, target modules) and
``adapter_model.safetensors`` whose tensor names carry the ``base_model.model.`` prefix of a
``PeftModel``. The adapter is injected with PEFT's own tuner for its type (LoRA, LoHa, LoKr,
OFT, …) and removed with the tuner's ``unload``, which puts the original modules back, so the
base model is restored bitwise. The component (UNet or a text encoder) is the file's folder
name (``unet/``, ``text_encoder/``) or, for a lone adapter, the one whose modules its tensor
names fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from t2i_bench.errors import BenchError
from t2i_bench.generation.formats import (
    COMPONENTS,
    PEFT_PREFIX,
    PeftPart,
    load_state_dict,
    peft_parts,
    read_peft_config,
)

ADAPTER = "t2i_bench_peft"
# the parameter suffix of an adapter tensor: lora_A.weight, hada_w1_a, lokr_w1, oft_R.weight, …
_ADAPTER_PART = re.compile(r"\.(lora_|hada_|lokr_|oft_|boft_|ia3_|vera_|loha_)[^.]*(\..*)?$")


def module_name(key: str) -> str | None:
    """The adapted module of an adapter tensor name (None for other tensors)."""
    match = _ADAPTER_PART.search(key)
    return key[: match.start()] if match else None


def _match_text_model_level(weights: dict, model) -> dict:
    """Text-encoder adapters written under transformers 4 name ``text_model.encoder…``;
    transformers 5's ``CLIPTextModel`` has no ``text_model`` level (its projection model
    does). Add or drop the level so the names fit ``model``."""
    has_level = hasattr(model, "text_model")
    out = {}
    for key, value in weights.items():
        if has_level and key.startswith(("encoder.", "embeddings.", "final_layer_norm.")):
            key = "text_model." + key
        elif not has_level and key.startswith("text_model."):
            key = key.removeprefix("text_model.")
        out[key] = value
    return out


def _fitting_component(pipe, weights: dict, path: Path) -> str:
    wanted = {m for k in weights if (m := module_name(k))}
    best, best_count = None, -1
    for name in COMPONENTS:
        model = getattr(pipe, name, None)
        if model is None:
            continue
        names = {n for n, _ in model.named_modules()}
        fitted = {m for k in _match_text_model_level(weights, model) if (m := module_name(k))}
        count = len(fitted & names)
        if count == len(wanted) and wanted:
            return name
        if count > best_count:
            best, best_count = name, count
    raise BenchError(
        f"PEFT adapter does not fit the base model: at most {max(best_count, 0)} of "
        f"{len(wanted)} modules matched ({best})",
        path,
    )


def _config_from_weights(weights: dict) -> dict:
    """A LoRA config for a bare ``adapter_model.safetensors``: rank from the tensors, alpha
    equal to the rank (scale 1.0; PEFT files do not store alpha), exact target modules."""
    ranks = {
        m: v.shape[0]
        for k, v in weights.items()
        if k.endswith("lora_A.weight") and (m := module_name(k))
    }
    if not ranks:
        raise BenchError("bare PEFT weights without adapter_config.json must be LoRA (lora_A/B)")
    rank = max(set(ranks.values()), key=list(ranks.values()).count)
    pattern = {m: r for m, r in ranks.items() if r != rank}
    return {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": rank,
        "rank_pattern": pattern,
        "alpha_pattern": dict(pattern),
        "target_modules": sorted(ranks),
    }


def _apply_part(pipe, part: PeftPart, multiplier: float, allow_pickle: bool) -> Callable:
    from peft import get_peft_config, set_peft_model_state_dict
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
    from peft.tuners.tuners_utils import BaseTunerLayer

    weights = load_state_dict(part.weights, allow_pickle)
    weights = {k.removeprefix(PEFT_PREFIX): v for k, v in weights.items()}
    component = part.component or _fitting_component(pipe, weights, part.weights)
    model = getattr(pipe, component, None)
    if model is None:
        raise BenchError(f"the base model has no {component} for this adapter", part.weights)
    weights = _match_text_model_level(weights, model)
    config = read_peft_config(part)
    if config is None:
        try:
            config = _config_from_weights(weights)
        except BenchError as exc:
            raise BenchError(str(exc), part.weights) from None
    keep = {k: v for k, v in config.items() if k not in ("base_model_name_or_path", "revision")}
    keep["inference_mode"] = True
    try:
        peft_config = get_peft_config(keep)
        tuner_cls = PEFT_TYPE_TO_TUNER_MAPPING[peft_config.peft_type]
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchError(f"unsupported PEFT adapter config ({first})", part.config) from None
    try:
        tuner = tuner_cls(model, peft_config, adapter_name=ADAPTER)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchError(
            f"PEFT adapter does not fit the {component}: {first}", part.weights
        ) from None
    try:
        result = set_peft_model_state_dict(model, weights, adapter_name=ADAPTER)
        unexpected = [k for k in result.unexpected_keys if module_name(k)]
        missing = [k for k in result.missing_keys if ADAPTER in k and module_name(k)]
        if unexpected or missing:
            example = (unexpected or missing)[0]
            raise BenchError(
                f"PEFT adapter does not fit the {component}: {len(unexpected)} tensors without "
                f"a module, {len(missing)} adapter tensors not in the file (e.g. {example})",
                part.weights,
            )
        layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
        if multiplier != 1.0:
            if not all(hasattr(m, "set_scale") for m in layers):
                raise BenchError(
                    f"{peft_config.peft_type} adapters cannot be scaled; use multiplier 1",
                    part.weights,
                )
            for layer in layers:
                layer.set_scale(ADAPTER, multiplier)
        param = next(model.parameters())
        for layer in layers:
            layer.to(device=param.device)
    except BenchError:
        tuner.unload()
        raise
    except Exception as exc:
        tuner.unload()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchError(
            f"PEFT adapter does not fit the {component}: {first}", part.weights
        ) from None
    return tuner.unload


def apply_peft(
    pipe, path: Path, multiplier: float, allow_pickle: bool = False
) -> Callable[[], None]:
    """Inject every PEFT adapter of ``path``; returns the function that removes them."""
    parts = peft_parts(path)
    if not parts:
        raise BenchError("no PEFT adapter (adapter_config.json + adapter_model.*) found", path)
    undo: list[Callable] = []

    def undo_all() -> None:
        while undo:
            undo.pop()()

    try:
        for part in parts:
            undo.append(_apply_part(pipe, part, multiplier, allow_pickle))
    except BaseException:
        undo_all()
        raise
    return undo_all


def peft_notes(path: Path) -> list[str]:
    """What the user should know about a PEFT checkpoint before its numbers are read."""
    return [
        f"{part.weights.name}: no adapter_config.json beside it; lora_alpha is taken equal "
        "to the rank (scale 1.0), as PEFT files do not store it"
        for part in peft_parts(path)
        if part.config is None
    ]

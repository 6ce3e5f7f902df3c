"""Checkpoints: resolve config entries to files, read hyperparameters from their metadata.

Hyperparameters come, in increasing priority, from the kohya ``ss_*`` metadata in the
safetensors header, from a file-name regex, and from the config.
"""

from __future__ import annotations

import functools
import glob as globlib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from t2i_bench.columns import hyperparameter_name_problem
from t2i_bench.config import RunConfig
from t2i_bench.errors import BenchError
from t2i_bench.files import require_regular_file
from t2i_bench.generation.formats import detect_format
from t2i_bench.hashing import file_sha256, stable_hash, tree_sha256

# Hyperparameters that vary along one training run / across training seeds.
PROGRESS_KEYS = ("epoch", "step")
SEED_KEYS = ("seed",)
_NAME_RE = re.compile(r"[^A-Za-z0-9_.=+-]+")


@dataclass
class Checkpoint:
    """One row of the leaderboard: an adapter file (or the base model) and its settings."""

    name: str
    path: Path | None  # None for the base model
    multiplier: float = 1.0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # hyperparameter -> where it came from
    file_hash: str = ""
    format: str = "base"
    token: str | None = None  # textual inversion: the token the embedding binds
    warnings: list[str] = field(default_factory=list)

    @property
    def is_base(self) -> bool:
        return self.path is None

    @property
    def identity(self) -> dict[str, Any]:
        """What determines this checkpoint's effect on pixels."""
        return {"file": self.file_hash, "multiplier": self.multiplier, "token": self.token}

    @property
    def run_id(self) -> str:
        """Links checkpoints of one training run (same settings, different epochs/steps)."""
        keep = {k: v for k, v in self.hyperparameters.items() if k not in PROGRESS_KEYS}
        keep["multiplier"] = self.multiplier
        return stable_hash(keep, 12) if not self.is_base else "base"

    @property
    def config_id(self) -> str:
        """Links one configuration across training seeds (and epochs)."""
        skip = PROGRESS_KEYS + SEED_KEYS + ("output_name",)
        keep = {k: v for k, v in self.hyperparameters.items() if k not in skip}
        keep["multiplier"] = self.multiplier
        return stable_hash(keep, 12) if not self.is_base else "base"


def safe_name(name: str) -> str:
    """A name safe to use in paths and HTML ids: no separators, no traversal."""
    cleaned = _NAME_RE.sub("_", name).strip("._")
    return cleaned or "unnamed"


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file; a corrupt file is a one-line error."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise BenchError(f"not a readable safetensors file ({exc})", path) from None


def _number(value: Any) -> Any:
    """Parse numbers in metadata strings; keep anything else as a string."""
    if isinstance(value, (int, float)) or value is None:
        return value
    text = str(value).strip()
    if text.lower() in ("", "none", "null", "n/a", "nan"):
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return None
    return (
        int(number)
        if number.is_integer() and "e" not in text.lower() and "." not in text
        else number
    )


_METADATA_KEYS = {
    "ss_network_dim": "dim",
    "ss_network_alpha": "alpha",
    "ss_learning_rate": "lr",
    "ss_unet_lr": "unet_lr",
    "ss_text_encoder_lr": "text_encoder_lr",
    "ss_epoch": "epoch",
    "ss_steps": "step",
    "ss_seed": "seed",
    "ss_output_name": "output_name",
}
_TEXT_KEYS = ("output_name", "algo", "preset")
_NETWORK_ARGS = ("preset", "factor", "conv_dim", "conv_alpha")


def hyperparameters_from_metadata(meta: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Map kohya ``ss_*`` keys to t2i-bench hyperparameter names; junk values are warned
    about and ignored, never guessed."""
    out: dict[str, Any] = {}
    warnings: list[str] = []
    args: dict[str, Any] = {}
    if meta.get("ss_network_args"):
        try:
            parsed = json.loads(meta["ss_network_args"])
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            args = parsed
        else:
            warnings.append("metadata ss_network_args is not a JSON object; ignored")
    module = meta.get("ss_network_module", "")
    if "algo" in args:
        out["algo"] = str(args["algo"]).lower()
    elif module.startswith("lycoris"):
        out["algo"] = "lora"  # lycoris-lora's default algorithm
    elif module:
        out["algo"] = module.rsplit(".", 1)[-1]  # sd-scripts: networks.lora, networks.dylora…
    values = {name: args[name] for name in _NETWORK_ARGS if name in args}
    values.update({name: meta[key] for key, name in _METADATA_KEYS.items() if key in meta})
    for name, raw in values.items():
        value = _number(raw)
        if value is None:
            continue
        if isinstance(value, str) and name not in _TEXT_KEYS:
            warnings.append(f"metadata {name}={raw!r} is not a number; ignored")
            continue
        out[name] = value
    if "lr" not in out and "unet_lr" in out:
        out["lr"] = out["unet_lr"]
    return out, warnings


def kohya_model_hashes(path: Path) -> set[str]:
    """Hashes sd-scripts may record for a base model file: the legacy ``model_hash`` (64 KiB
    at offset 1 MiB) and the file's full sha256."""
    with open(path, "rb") as handle:
        handle.seek(0x100000)
        legacy = hashlib.sha256(handle.read(0x10000)).hexdigest()
    return {legacy[:8], legacy, file_sha256(path)}


def base_model_mismatch(recorded: str, base_hashes: set[str]) -> bool:
    """True when a recorded base-model hash matches none of the loaded base's hashes."""
    recorded = recorded.strip().lower()
    return bool(recorded) and not any(
        h.startswith(recorded) or recorded.startswith(h) for h in base_hashes
    )


def hyperparameters_from_name(stem: str, pattern: str | None) -> dict[str, Any]:
    """Named groups of ``pattern`` matched against a file stem."""
    if not pattern:
        return {}
    match = re.search(pattern, stem)
    if not match:
        return {}
    return {k: _number(v) for k, v in match.groupdict().items() if v is not None}


def _expand_entry(entry: Any) -> list[Path]:
    if entry.path is not None:
        return [Path(entry.path)]
    paths = sorted(Path(p) for p in globlib.glob(entry.glob, recursive=True))
    if not paths:
        raise BenchError(f"checkpoints: glob matched no files: {entry.glob}")
    return paths


@functools.lru_cache(maxsize=4)
def base_hashes_of(source: str) -> set[str] | None:
    """Every hash a trainer may have recorded for this base model; None when unknowable."""
    path = Path(source)
    if path.is_file():
        return kohya_model_hashes(path)
    if path.is_dir():
        return {tree_sha256(path)}
    return None


def resolve_checkpoints(config: RunConfig, allow_pickle: bool = False) -> list[Checkpoint]:
    """The base model row followed by every configured checkpoint, in config order."""
    source = config.base_model.source
    rows = [Checkpoint(name=config.base_model.name, path=None, file_hash="base")]
    seen: dict[str, Path | None] = {rows[0].name: None}
    for entry in config.checkpoints:
        for path in _expand_entry(entry):
            if not path.exists():
                raise BenchError("checkpoint file not found", path)
            require_regular_file(path, "checkpoint", allow_dir=True)  # a FIFO would block
            try:
                fmt = detect_format(path, allow_pickle).value
                meta = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
            except BenchError as exc:  # kept as a row: its load fails, the run goes on
                fmt, meta = "unreadable", {}
                unreadable = [str(exc).removeprefix(f"{path}: ")]
            else:
                unreadable = []
            hyper: dict[str, Any] = {}
            sources: dict[str, str] = {}
            from_meta, warnings = hyperparameters_from_metadata(meta)
            warnings = unreadable + warnings
            recorded = meta.get("ss_sd_model_hash", "")
            known = base_hashes_of(source) if recorded else None
            if recorded and known is not None and base_model_mismatch(recorded, known):
                warnings.append(
                    f"trained on another base model (ss_sd_model_hash={recorded}, "
                    f"ss_sd_model_name={meta.get('ss_sd_model_name', '?')})"
                )
            layers = (
                (from_meta, "metadata"),
                (hyperparameters_from_name(path.stem, config.filename_pattern), "filename"),
                (dict(entry.hyperparameters), "config"),
            )
            for values, source in layers:
                hyper.update(values)
                sources.update({k: source for k in values})
            for key in hyper:
                if problem := hyperparameter_name_problem(key):
                    raise BenchError(f"{problem} (from the {sources[key]})", path)
            multipliers = entry.multipliers or [entry.multiplier]
            for multiplier in multipliers:
                name = safe_name(entry.name or path.stem)
                if len(multipliers) > 1:
                    name = f"{name}@{multiplier:g}"
                if name in seen and seen[name] is None:
                    raise BenchError(
                        f"checkpoint name {name!r} is the base model's row; give this entry "
                        "another 'name'",
                        path,
                    )
                if name in seen:
                    raise BenchError(
                        f"duplicate checkpoint name {name!r} (also {seen[name]}); "
                        "give each entry a distinct 'name'",
                        path,
                    )
                seen[name] = path
                rows.append(
                    Checkpoint(
                        name=name,
                        path=path,
                        multiplier=multiplier,
                        hyperparameters=hyper,
                        sources=sources,
                        file_hash=tree_sha256(path) if path.is_dir() else file_sha256(path),
                        format=fmt,
                        token=entry.token,
                        warnings=[f"{path.name}: {w}" for w in warnings],
                    )
                )
    return rows


@dataclass
class CheckpointInfo:
    """What ``t2i-bench inspect`` shows for one file."""

    format: str
    hyperparameters: dict[str, tuple[Any, str]]  # name -> (value, source)
    tensors: int
    modules: dict[str, int]  # kohya prefix -> module count
    warnings: list[str]


def describe_checkpoint(
    path: Path, pattern: str | None = None, allow_pickle: bool = False
) -> CheckpointInfo:
    """Format, hyperparameters with their source, and module counts of one checkpoint."""
    from t2i_bench.generation.formats import read_keys

    path = Path(path)
    if not path.exists():
        raise BenchError("checkpoint file not found", path)
    require_regular_file(path, "checkpoint", allow_dir=True)
    fmt = detect_format(path, allow_pickle)
    keys = [] if path.is_dir() else read_keys(path, allow_pickle)
    meta = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
    from_meta, warnings = hyperparameters_from_metadata(meta)
    hyper = {k: (v, "metadata") for k, v in from_meta.items()}
    hyper.update(
        {k: (v, "filename") for k, v in hyperparameters_from_name(path.stem, pattern).items()}
    )
    modules: dict[str, int] = {}
    for module in {k.split(".")[0] for k in keys if "." in k}:
        prefix = module.split("_")[0] + ("_" + module.split("_")[1] if "_" in module else "")
        modules[prefix] = modules.get(prefix, 0) + 1
    return CheckpointInfo(fmt.value, hyper, len(keys), dict(sorted(modules.items())), warnings)

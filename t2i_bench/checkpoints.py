"""Checkpoints: resolve config entries to files, read hyperparameters from their metadata.

Hyperparameters come, in increasing priority, from the kohya ``ss_*`` metadata in the
safetensors header, from a file-name regex, and from the config.
"""

from __future__ import annotations

import glob as globlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from t2i_bench.config import RunConfig
from t2i_bench.errors import BenchError
from t2i_bench.generation.formats import PICKLE_SUFFIXES, detect_format
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


def hyperparameters_from_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """Map kohya ``ss_*`` keys to t2i-bench hyperparameter names."""
    out: dict[str, Any] = {}
    args: dict[str, Any] = {}
    if meta.get("ss_network_args"):
        try:
            parsed = json.loads(meta["ss_network_args"])
            args = parsed if isinstance(parsed, dict) else {}
        except json.JSONDecodeError:
            args = {}
    module = meta.get("ss_network_module", "")
    if "algo" in args:
        out["algo"] = str(args["algo"]).lower()
    elif module:
        out["algo"] = "lora" if module.endswith("lora") else module.rsplit(".", 1)[-1]
    for key in ("preset", "factor", "conv_dim", "conv_alpha"):
        if key in args:
            out[key] = _number(args[key])
    simple = {
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
    for key, name in simple.items():
        if key in meta:
            value = _number(meta[key])
            if value is not None:
                out[name] = value
    if "lr" not in out and "unet_lr" in out:
        out["lr"] = out["unet_lr"]
    return {k: v for k, v in out.items() if v is not None}


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


def resolve_checkpoints(config: RunConfig, allow_pickle: bool = False) -> list[Checkpoint]:
    """The base model row followed by every configured checkpoint, in config order."""
    rows = [Checkpoint(name=config.base_model.name, path=None, file_hash="base")]
    seen: dict[str, Path | None] = {rows[0].name: None}
    for entry in config.checkpoints:
        for path in _expand_entry(entry):
            if not path.exists():
                raise BenchError("checkpoint file not found", path)
            if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
                raise BenchError(
                    "pickle checkpoints can run code when loaded; convert to .safetensors "
                    "or pass --allow-pickle",
                    path,
                )
            fmt = detect_format(path, allow_pickle)
            meta = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
            hyper: dict[str, Any] = {}
            sources: dict[str, str] = {}
            layers = (
                (hyperparameters_from_metadata(meta), "metadata"),
                (hyperparameters_from_name(path.stem, config.filename_pattern), "filename"),
                (dict(entry.hyperparameters), "config"),
            )
            for values, source in layers:
                hyper.update(values)
                sources.update({k: source for k in values})
            multipliers = entry.multipliers or [entry.multiplier]
            for multiplier in multipliers:
                name = safe_name(entry.name or path.stem)
                if len(multipliers) > 1:
                    name = f"{name}@{multiplier:g}"
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
                        format=fmt.value,
                        token=entry.token,
                    )
                )
    return rows

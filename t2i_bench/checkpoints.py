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
from t2i_bench.generation.formats import Format, detect_format
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
    "peft_r": "dim",  # a PEFT adapter's adapter_config.json (see read_metadata)
    "peft_alpha": "alpha",
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
    if meta.get("peft_type"):
        out["algo"] = meta["peft_type"].lower()
    elif "algo" in args:
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


_HEX = re.compile(r"[0-9a-f]+")


def kohya_model_hash(path: Path) -> str:
    """sd-scripts' ``model_hash`` (A1111's old model hash): the first 8 hex digits of the
    sha256 of the 64 KiB at offset 1 MiB of the file. ``ss_sd_model_hash`` is this value;
    ``ss_new_sd_model_hash`` is the sha256 of the whole file (``calculate_sha256``)."""
    with open(path, "rb") as handle:
        handle.seek(0x100000)
        return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]


@dataclass(frozen=True)
class BaseHashes:
    """What a recorded base-model hash can be compared with, for one base model."""

    kind: str  # "single file", "diffusers folder", "hub id", "tiny built-in model"
    legacy: frozenset[str] = frozenset()  # kohya model_hash of the base file(s)
    full: frozenset[str] = frozenset()  # sha256 of the base file
    tree: str | None = None  # t2i-bench's folder hash (the demo records it)


@functools.lru_cache(maxsize=4)
def base_hashes_of(source: str) -> BaseHashes:
    """The hashes of the base model that a trainer could have recorded.

    A single file has kohya's two; a diffusers folder (or a cached hub snapshot) has none of
    kohya's (sd-scripts writes ``IsADirectory`` for a folder and nothing for a hub id), only
    the legacy hashes of any single-file checkpoints saved beside its subfolders, and
    t2i-bench's own folder hash.
    """
    from t2i_bench.generation.base_model import hub_snapshot, is_hub_id

    if source == "tiny":
        return BaseHashes("tiny built-in model")
    path = Path(source)
    if path.is_file():
        return BaseHashes(
            "single file", frozenset({kohya_model_hash(path)}), frozenset({file_sha256(path)})
        )
    kind = "diffusers folder"
    if not path.is_dir() and is_hub_id(source):
        path, kind = hub_snapshot(source), "hub id"
        if path is None:
            return BaseHashes(kind)
    singles = [p for p in path.glob("*.safetensors") if p.is_file()]
    legacy = frozenset(kohya_model_hash(p) for p in singles if p.stat().st_size > 0x110000)
    return BaseHashes(kind, legacy, tree=tree_sha256(path))


def base_hash_warning(meta: dict[str, str], source: str) -> str | None:
    """A warning when the base-model hash a kohya file records differs from this base's,
    compared like with like; None when it agrees or nothing was recorded. A hash that
    cannot be compared (a single file's hash against a diffusers folder) says so."""
    recorded = meta.get("ss_sd_model_hash", "").strip().lower()
    new = meta.get("ss_new_sd_model_hash", "").strip().lower()
    hashes = [h for h in (recorded, new) if len(h) >= 8 and _HEX.fullmatch(h)]
    if not hashes:  # no hash recorded, or sd-scripts' "IsADirectory" / "NOFILE"
        return None
    base = base_hashes_of(source)
    tree = base.tree or ""
    for h in hashes:
        if (
            h in base.legacy
            or h in base.full
            or (tree and (tree.startswith(h) or h.startswith(tree)))
        ):
            return None
    name = meta.get("ss_sd_model_name", "?")
    shown = recorded or new
    if base.kind == "single file":
        pairs = [(recorded, base.legacy), (new, base.full)]
        if any(len(h) in (8, 64) and h and own for h, own in pairs):
            mine = next(iter(base.legacy)) if len(shown) == 8 else next(iter(base.full))
            return (
                f"trained on another base-model file (ss_sd_model_hash={shown}, "
                f"ss_sd_model_name={name}; this base's is {mine[: len(shown)]})"
            )
    return (
        f"cannot compare the base-model hash it records (ss_sd_model_hash={shown}, "
        f"ss_sd_model_name={name}) with this base model: kohya hashes the bytes of a "
        f"single-file checkpoint and the base here is a {base.kind}"
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


GENERIC_STEMS = ("adapter_model", "pytorch_lora_weights", "learned_embeds", "model")
_CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)")


def default_name(path: Path) -> str:
    """A row name for a file or folder: its stem, with the parent folder's name in front
    where trainers use the same name in every run (``checkpoint-500``, ``adapter_model``)."""
    stem = path.stem if path.is_file() else path.name
    if stem in GENERIC_STEMS or _CHECKPOINT_DIR.fullmatch(stem):
        return f"{path.resolve().parent.name}-{stem}"
    return stem


def hyperparameters_from_folder(path: Path) -> dict[str, Any]:
    """The training step of an accelerate ``checkpoint-N`` folder (or a file directly in one)."""
    for name in (path.name, path.parent.name):
        if match := _CHECKPOINT_DIR.fullmatch(name):
            return {"step": int(match.group(1))}
    return {}


def read_metadata(path: Path, fmt: Format) -> dict[str, str]:
    """The safetensors metadata that describes a checkpoint, plus a PEFT adapter's config as
    ``peft_*`` keys (its type, rank and alpha)."""
    from t2i_bench.generation.formats import lora_weights_file, peft_parts, read_peft_config

    if fmt is Format.PEFT:
        meta: dict[str, str] = {}
        for part in peft_parts(path):
            if part.weights.suffix == ".safetensors":
                meta.update(read_safetensors_metadata(part.weights))
            config = read_peft_config(part) or {}
            for key, name in (
                ("peft_type", "peft_type"),
                ("r", "peft_r"),
                ("lora_alpha", "peft_alpha"),
            ):
                if key in config and name not in meta:
                    meta[name] = str(config[key])
        return meta
    file = lora_weights_file(path) if fmt is Format.DIFFUSERS_LORA and path.is_dir() else path
    if file.is_file() and file.suffix == ".safetensors":
        return read_safetensors_metadata(file)
    return {}


def format_notes(path: Path, fmt: Format) -> list[str]:
    """What a user should know about how a checkpoint of this format is read."""
    if fmt is Format.PEFT:
        from t2i_bench.generation.peft_adapter import peft_notes

        return peft_notes(path)
    return []


def checkpoint_hash(path: Path, fmt: Format) -> str:
    """The identity of a checkpoint's contents: its file's sha256, or for a folder a hash
    over the files that change pixels (an accelerate checkpoint's optimizer is left out)."""
    from t2i_bench.generation.formats import checkpoint_files

    if path.is_file():
        return file_sha256(path)
    if fmt is Format.FULL_DIFFUSERS:
        return tree_sha256(path)
    files = checkpoint_files(path)
    return stable_hash({str(f.relative_to(path)): file_sha256(f) for f in files})


def resolve_checkpoints(config: RunConfig, allow_pickle: bool = False) -> list[Checkpoint]:
    """The base model row followed by every configured checkpoint, in config order."""
    base_source = config.base_model.source
    rows = [Checkpoint(name=config.base_model.name, path=None, file_hash="base")]
    seen: dict[str, Path | None] = {rows[0].name: None}
    for entry in config.checkpoints:
        for path in _expand_entry(entry):
            if not path.exists():
                raise BenchError("checkpoint file not found", path)
            require_regular_file(path, "checkpoint", allow_dir=True)  # a FIFO would block
            try:
                fmt = detect_format(path, allow_pickle)
                meta = read_metadata(path, fmt)
                notes = format_notes(path, fmt)
                file_hash = checkpoint_hash(path, fmt)
            except BenchError as exc:  # kept as a row: its load fails, the run goes on
                fmt, meta = None, {}
                notes = [str(exc).removeprefix(f"{path}: ")]
                file_hash = tree_sha256(path) if path.is_dir() else file_sha256(path)
            hyper: dict[str, Any] = {}
            sources: dict[str, str] = {}
            from_meta, warnings = hyperparameters_from_metadata(meta)
            warnings = notes + warnings
            if hash_warning := base_hash_warning(meta, base_source):
                warnings.append(hash_warning)
            layers = (
                (from_meta, "metadata"),
                (hyperparameters_from_folder(path), "folder name"),
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
                name = safe_name(entry.name or default_name(path))
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
                        file_hash=file_hash,
                        format=fmt.value if fmt else "unreadable",
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
    modules: dict[str, int]  # component (kohya prefix, pipeline component) -> modules/vectors
    warnings: list[str]


def _module_counts(path: Path, fmt: Format, allow_pickle: bool) -> tuple[int, dict[str, int]]:
    """Tensor count and adapted modules (or embedding vectors, or tensors) per component."""
    from t2i_bench.generation.formats import (
        checkpoint_components,
        lora_weights_file,
        peft_parts,
        read_embedding,
        read_keys,
    )
    from t2i_bench.generation.peft_adapter import module_name

    counts: dict[str, set[str]] = {}
    if fmt is Format.TEXTUAL_INVERSION:
        vectors = read_embedding(path, allow_pickle).vectors
        return len(vectors), {k: int(v.shape[0]) for k, v in vectors.items()}
    if fmt in (Format.FULL_DIFFUSERS, Format.DIFFUSERS_CHECKPOINT):
        folders = checkpoint_components(path)
        total, out = 0, {}
        for name, folder in folders.items():
            keys = [k for f in sorted(folder.glob("*.safetensors")) for k in read_keys(f)]
            total += len(keys)
            out[name] = len(keys)
        return total, out
    if fmt is Format.PEFT:
        keys = []
        for part in peft_parts(path):
            part_keys = read_keys(part.weights, allow_pickle)
            keys += part_keys
            where = part.component or "auto"
            counts.setdefault(where, set()).update(
                m for k in part_keys if (m := module_name(k.removeprefix("base_model.model.")))
            )
        return len(keys), {k: len(v) for k, v in sorted(counts.items())}
    file = lora_weights_file(path) if path.is_dir() else path
    keys = read_keys(file, allow_pickle)
    for key in keys:
        if fmt is Format.LYCORIS:
            module = key.split(".")[0]
            parts = module.split("_")
            where = "_".join(parts[:2])
        elif fmt is Format.DIFFUSERS_LORA:
            where, _, rest = key.partition(".")
            module = module_name(key) or key.split(".lora")[0]
        else:
            where, module = key.split(".")[0], key
        counts.setdefault(where, set()).add(module)
    return len(keys), {k: len(v) for k, v in sorted(counts.items())}


def describe_checkpoint(
    path: Path, pattern: str | None = None, allow_pickle: bool = False
) -> CheckpointInfo:
    """Format, hyperparameters with their source, and module counts of one checkpoint."""
    path = Path(path)
    if not path.exists():
        raise BenchError("checkpoint file not found", path)
    require_regular_file(path, "checkpoint", allow_dir=True)
    fmt = detect_format(path, allow_pickle)
    meta = read_metadata(path, fmt)
    from_meta, warnings = hyperparameters_from_metadata(meta)
    hyper = {k: (v, "metadata") for k, v in from_meta.items()}
    hyper.update({k: (v, "folder name") for k, v in hyperparameters_from_folder(path).items()})
    hyper.update(
        {k: (v, "filename") for k, v in hyperparameters_from_name(path.stem, pattern).items()}
    )
    tensors, modules = _module_counts(path, fmt, allow_pickle)
    return CheckpointInfo(fmt.value, hyper, tensors, modules, format_notes(path, fmt) + warnings)

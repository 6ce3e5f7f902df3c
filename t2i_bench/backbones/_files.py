"""Where a backbone's files are: local paths, the Hugging Face hub cache, the torch hub folder.

Describers resolve every file here without loading a model, and loaders read exactly the
files resolved, so a spec's ``weight_files`` are the files whose contents make the model.
Resolution is offline-first: a file already in a cache is used as is; a missing one is
downloaded only when the hub is not switched off (``HF_HUB_OFFLINE``), else it is one
:class:`BenchError` line naming the file, where to get it and where to put it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from t2i_bench.errors import BenchError

#: Files a transformers tokenizer or processor may read (those present are part of the spec).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", *TOKENIZER_FILES)
#: transformers' weight files, in the order it prefers them.
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def brief(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception on one line, at most ``limit`` characters of it."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def offline() -> bool:
    """True when the Hugging Face hub (and so every download) is switched off."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")
    return bool(constants.HF_HUB_OFFLINE) or env


def hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def is_local(source: str) -> bool:
    """A source that names a local file or folder (as opposed to a hub id or a tag)."""
    return os.path.exists(os.path.expanduser(source))


def hub_file(
    repo: str,
    filename: str,
    hint: str,
    required: bool = True,
    with_files: Sequence[str] = (),
) -> str | None:
    """``filename`` of hub repo ``repo`` in the local cache (downloaded when online).

    ``hint`` says how else to provide it (a config key / environment variable);
    ``with_files`` are the other files of the repo the message should ask for. A file the
    repo does not have, or that is not cached while offline, is None when not ``required``.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=hub_cache())
    if isinstance(found, str) and os.path.isfile(found):
        return found
    if not offline():
        try:
            return hf_hub_download(repo, filename, cache_dir=hub_cache())
        except Exception:  # no network, no such file: reported below
            pass
    if not required:
        return None
    raise BenchError(missing_hub_message(repo, [filename, *with_files], hint))


def missing_hub_message(repo: str, filenames: Sequence[str], hint: str) -> str:
    folder = os.path.join(hub_cache(), "models--" + repo.replace("/", "--"))
    names = " ".join(filenames)
    return (
        f"missing {names} of https://huggingface.co/{repo}: download into the Hugging Face "
        f"cache ({folder}) with `hf download {repo} {names}`, or {hint}"
    )


def first_hub_file(
    repo: str, filenames: Sequence[str], hint: str, ask_for: Sequence[str] = ()
) -> str:
    """The first of ``filenames`` the repo provides (cached, or downloaded when online);
    the message asks for ``ask_for`` (the files the published repo has), by default the
    first name."""
    for name in filenames:
        if (path := hub_file(repo, name, hint, required=False)) is not None:
            return path
    raise BenchError(missing_hub_message(repo, ask_for or filenames[:1], hint))


def hub_snapshot(repo: str, filename: str, hint: str, with_files: Sequence[str] = ()) -> str:
    """The cache snapshot folder of ``repo`` that holds ``filename`` (a local model folder)."""
    return os.path.dirname(hub_file(repo, filename, hint, with_files=with_files) or "")


def torch_hub_file(filename: str, url: str, hint: str) -> str:
    """``filename`` in the torch hub checkpoint folder (downloaded from ``url`` when online)."""
    import torch

    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(folder, filename)
    if os.path.isfile(path):
        return path
    if not offline():
        try:
            os.makedirs(folder, exist_ok=True)
            torch.hub.download_url_to_file(url, path, progress=False)
            return path
        except Exception:  # no network: reported below
            pass
    raise BenchError(
        f"missing {filename}: download {url} into {folder}/ (the torch hub cache, "
        f"$TORCH_HOME/hub/checkpoints), or {hint}"
    )


def local_file(path: str, what: str, hint: str) -> str:
    """A local file that must exist."""
    full = expand(path)
    if not os.path.isfile(full):
        raise BenchError(f"{what} not found: give an existing file ({hint})", full)
    return full


def hf_weight_files(folder: str, what: str, hint: str) -> list[str]:
    """The weight files transformers reads from a model folder: the first of
    :data:`HF_WEIGHT_FILES` present, with its shards when it is an index."""
    for name in HF_WEIGHT_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if not name.endswith(".index.json"):
            return [path]
        with open(path, encoding="utf-8") as handle:
            shards = sorted(set(json.load(handle).get("weight_map", {}).values()))
        for shard in shards:
            if not os.path.isfile(os.path.join(folder, shard)):
                raise BenchError(f"{what}: shard {shard} listed in {name} is missing", folder)
        return [path] + [os.path.join(folder, s) for s in shards]
    raise BenchError(
        f"{what}: no weights in this folder (need one of {', '.join(HF_WEIGHT_FILES)}; {hint})",
        folder,
    )


def hf_model_folder(
    source: str, what: str, hint: str, with_files: Sequence[str] = ("model.safetensors",)
) -> str:
    """A transformers model folder from a local folder or a hub id (its cache snapshot, with
    the weight files fetched when online); ``with_files`` are named in the message when the
    hub repo is missing."""
    if is_local(source):
        folder = expand(source)
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise BenchError(f"{what}: not a transformers model folder (no config.json)", folder)
        return folder
    folder = hub_snapshot(source, "config.json", hint, with_files)
    for name in HF_WEIGHT_FILES:
        path = hub_file(source, name, hint, required=False)
        if path is None:
            continue
        if name.endswith(".index.json"):
            with open(path, encoding="utf-8") as handle:
                shards = sorted(set(json.load(handle).get("weight_map", {}).values()))
            for shard in shards:
                hub_file(source, shard, hint)
        return folder
    raise BenchError(missing_hub_message(source, with_files[:1] or HF_WEIGHT_FILES[:1], hint))


def present(folder: str, names: Sequence[str]) -> list[str]:
    """The files among ``names`` that exist in ``folder``."""
    return [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]


def hub_optional_files(repo: str, names: Sequence[str]) -> list[str]:
    """The files among ``names`` the hub repo has in the cache (or downloads when online)."""
    out = []
    for name in names:
        path = hub_file(repo, name, "", required=False)
        if path is not None:
            out.append(path)
    return out


def same_folder(paths: Sequence[str]) -> str:
    """The one folder holding all ``paths`` (a hub snapshot)."""
    folders = {str(Path(p).parent) for p in paths}
    if len(folders) != 1:
        raise BenchError(f"expected files of one folder, got {sorted(folders)}")
    return folders.pop()


def tensor_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a ``torch.save`` checkpoint (a state dict, or ``{"state_dict":
    ...}``), read with ``weights_only`` and memory-mapped (no tensor data is read; a legacy
    non-zip file is read whole); cached while the file is unchanged. Raises what
    ``torch.load`` raises, or ``TypeError`` for a file that holds no state dict."""
    full = expand(path)
    st = os.stat(full)
    return dict(_tensor_shapes(full, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=32)
def _tensor_shapes(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise TypeError(f"holds a {type(obj).__name__}, not a state dict")
    return tuple((str(k), tuple(v.shape)) for k, v in obj.items() if isinstance(v, torch.Tensor))

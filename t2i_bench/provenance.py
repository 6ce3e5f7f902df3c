"""Provenance: package versions, git revision and config hash recorded with every run, and
the warning when one run folder's values were made under different package versions."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from t2i_bench.hashing import stable_hash

PACKAGES = ("t2i-bench", "torch", "diffusers", "transformers", "open_clip_torch", "lycoris-lora")
#: Packages whose version can change a rendered pixel or a metric value.
VALUE_PACKAGES = ("torch", "diffusers", "transformers", "open_clip_torch", "lycoris-lora")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def provenance(config_dump: dict[str, Any]) -> dict[str, object]:
    """The record stored with a run: versions, git revision, Python, platform, config hash."""
    return {
        "packages": package_versions(),
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "config_hash": stable_hash(config_dump),
    }


def extend_history(history: list[dict[str, Any]], record: dict[str, Any]) -> list[dict[str, Any]]:
    """The versions of every invocation that wrote to a run folder, without repeats in a row."""
    versions = {k: record["packages"].get(k) for k in VALUE_PACKAGES}
    if history and history[-1] == versions:
        return history
    return [*history, versions]


def version_drift(history: list[dict[str, Any]]) -> list[str]:
    """One warning per value-changing package with more than one version in ``history``."""
    warnings = []
    for name in VALUE_PACKAGES:
        seen = list(dict.fromkeys(str(h.get(name)) for h in history if name in h))
        if len(seen) > 1:
            warnings.append(
                f"{name} changed between runs on this folder ({' -> '.join(seen)}): values "
                "computed before and after may differ; use a fresh --output to compare like "
                "with like"
            )
    return warnings

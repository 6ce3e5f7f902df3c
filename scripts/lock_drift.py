"""Print the installed packages whose versions differ from a lock file (informational)."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def locked_versions(lock: Path) -> dict[str, str]:
    """name -> version of every ``name==version`` line of a pip requirements lock."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if match:
            pins[_canonical(match[1])] = match[2]
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock: str) -> int:
    pins = locked_versions(Path(lock))
    installed = {_canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    drift = [
        f"  {name}: lock {pins[name]} -> installed {installed[name]}"
        for name in sorted(pins)
        if name in installed and installed[name] != pins[name]
    ]
    print(f"{len(drift)} package(s) newer or older than {lock}:", *drift, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))

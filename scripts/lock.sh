#!/usr/bin/env bash
# Regenerate requirements.lock: exact versions of every dependency and extra (dev, ray),
# resolved by uv from the package registry reachable here, for CPython 3.11 on x86_64 Linux
# (the machines CI and the README's commands run on). Run it after changing pyproject.toml's
# dependencies, then run the tests on the new lock before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${UV_TOOLS_VENV:-.cache/uv-tools}
[ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q 'uv>=0.5'; }
"$tools/bin/uv" pip compile pyproject.toml --extra dev --extra ray \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --no-header --annotation-style line --output-file requirements.lock "$@"
sed -i '1i # Exact versions CI tested; regenerate with scripts/lock.sh (see README, "Development").' requirements.lock

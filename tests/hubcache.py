"""A Hugging Face hub cache in the layout huggingface_hub writes (blobs, snapshots, refs), for
tests of offline resolution: ``models--org--name/blobs/<sha256>``,
``snapshots/<commit>/<file>`` (a relative symlink to the blob) and ``refs/main``."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def repo_dir(self, repo: str) -> Path:
        return self.root / ("models--" + repo.replace("/", "--"))

    def put(self, repo: str, filename: str, source: Path | bytes) -> Path:
        """Store ``source`` (a file or bytes) as ``filename`` of ``repo``; returns the snapshot
        path (what ``hf_hub_download`` would return)."""
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        base = self.repo_dir(repo)
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = base / "snapshots" / COMMIT / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
        (base / "refs").mkdir(exist_ok=True)
        (base / "refs" / "main").write_text(COMMIT)
        return link

    def put_folder(self, repo: str, folder: Path) -> Path:
        """Every file of ``folder`` as the files of ``repo``; returns the snapshot folder."""
        for path in sorted(folder.iterdir()):
            if path.is_file():
                self.put(repo, path.name, path)
        return self.repo_dir(repo) / "snapshots" / COMMIT

    def remove(self, repo: str) -> None:
        shutil.rmtree(self.repo_dir(repo), ignore_errors=True)

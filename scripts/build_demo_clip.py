"""Pretrain the demo's tiny CLIP and write ``t2i_bench/demo/data/clip_demo.safetensors``.

    python scripts/build_demo_clip.py            # pretrain (a few minutes on one core), write
    python scripts/build_demo_clip.py --check    # pretrain again, compare with the committed file

The file is committed so that the quickstart's ``clip_demo`` backbone loads it (see
``t2i_bench/demo/clip_pretrain.py``). Pretraining is seeded and single-threaded: ``--check``
rebuilds it and exits 1 if the weights differ from the committed ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from t2i_bench.demo.clip_pretrain import (  # noqa: E402
    CLIP_FILE,
    ClipRecipe,
    clip_metadata,
    model_state,
    pretrain_clip,
    save_clip,
    state_sha256,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CLIP_FILE, help="file to write")
    parser.add_argument("--check", action="store_true", help="rebuild and compare, write nothing")
    args = parser.parse_args(argv)

    import open_clip
    import torch

    start = time.perf_counter()
    recipe = ClipRecipe()
    model = pretrain_clip(recipe)
    print(f"  pretrained the demo CLIP ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.check:
        same = clip_metadata(args.out)["state_sha256"] == state_sha256(model_state(model))
        print(f"rebuilt demo CLIP {'matches' if same else 'DIFFERS from'} {args.out}")
        return 0 if same else 1
    versions = {"torch": torch.__version__, "open_clip": open_clip.__version__}
    metadata = save_clip(model, args.out, recipe, {"versions": str(versions)})
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.1f} MiB, state {metadata['state_sha256'][:16]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

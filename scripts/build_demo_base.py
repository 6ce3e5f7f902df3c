"""Pretrain the demo's tiny base model and write ``t2i_bench/demo/data/base.safetensors``.

    python scripts/build_demo_base.py            # pretrain (about 2 min on one core), write
    python scripts/build_demo_base.py --check    # pretrain again, compare with the committed file

The file is committed so that ``t2i-bench demo`` only trains adapters (see
``t2i_bench/demo/base.py``). Pretraining is seeded and single-threaded: ``--check`` rebuilds it
and exits 1 if the weights differ from the committed ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from t2i_bench.demo.base import (  # noqa: E402
    BASE_FILE,
    BaseRecipe,
    base_metadata,
    pretrain_base,
    save_base,
    state_sha256,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BASE_FILE, help="file to write")
    parser.add_argument("--check", action="store_true", help="rebuild and compare, write nothing")
    args = parser.parse_args(argv)

    import diffusers
    import torch
    import transformers

    from t2i_bench.demo.base import module_state

    def progress(stage: str, fraction: float) -> None:
        if fraction >= 1.0:
            print(f"  pretrained {stage} ({time.perf_counter() - start:.0f} s)", flush=True)

    start = time.perf_counter()
    recipe = BaseRecipe()
    components = pretrain_base(recipe, progress)
    if args.check:
        committed = base_metadata(args.out)["state_sha256"]
        rebuilt = state_sha256(module_state(components))
        same = committed == rebuilt
        print(f"rebuilt base {'matches' if same else 'DIFFERS from'} {args.out}")
        return 0 if same else 1
    versions = {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }
    metadata = save_base(components, args.out, recipe, {"built_with": repr(versions)})
    size = args.out.stat().st_size / 2**20
    print(
        f"wrote {args.out} ({size:.1f} MiB, state {metadata['state_sha256'][:12]}) in "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The small end-to-end run behind tests/test_golden.py: the tiny base and one LoHa file
(written deterministically by lycoris-lora), one concept of three coloured squares, every
built-in metric. ``python tests/golden/small_run.py OUT`` writes its leaderboard; the golden
file was made with t2i-bench before the architecture change (the store version 1 code) and
must stay valid after it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
METRICS = (
    "clip_i clip_t clip_t_x2_5 clip_t_x100 dino scd vendi lpips_div fid kid kid_std "
    "style_loss_base dino_base image_reward pickscore prompt_similarity"
).split()


def write_inputs(folder: Path) -> Path:
    """The concept, the adapter and the config in ``folder``; returns the config path."""
    sys.path.insert(0, str(REPO / "tests"))
    from adapter_files import write_lycoris_file

    from t2i_bench.generation.pipeline import load_base_pipeline

    images = folder / "zyx"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        array = np.zeros((64, 64, 3), np.uint8)
        array[16:48, 16:48, i] = 220
        Image.fromarray(array).save(images / f"img_{i}.png")
        (images / f"img_{i}.txt").write_text(f"a photo of zyx toy, view {i}")
    (folder / "zyx.yaml").write_text(
        "name: zyx\ntrigger: zyx\nclass_word: toy\ncategory: object\nimages: zyx\n"
    )
    pipe = load_base_pipeline("tiny", seed=0)
    adapter = write_lycoris_file(pipe, folder / "zyx-loha.safetensors", algo="loha", seed=5)
    config = folder / "golden.yaml"
    config.write_text(
        "name: golden\noutput_dir: out\nbase_model: {source: tiny}\n"
        "sampler: {steps: 3, guidance_scale: 3.0, width: 64, height: 64, batch_size: 4}\n"
        f"checkpoints: [{{path: {adapter.name}}}]\nconcepts: [zyx.yaml]\n"
        f"prompts: {{set: {REPO / 'prompts' / 'default.yaml'}, max_per_type: 2}}\n"
        f"images_per_prompt: 3\nthreads: 1\nmetrics: [{', '.join(METRICS)}]\n"
    )
    return config


if __name__ == "__main__":
    from typer.testing import CliRunner

    from t2i_bench.cli import app

    out = Path(sys.argv[1])
    config = write_inputs(out)
    result = CliRunner().invoke(app, ["run", str(config)])
    print(result.output)
    sys.exit(result.exit_code)

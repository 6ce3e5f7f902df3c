"""The demo concept ``olis``: a yellow ring with a purple dot in the middle (a toy).

Neither rings nor dots occur in the procedural pretraining set, so the base model cannot
draw it; adapters trained on these images learn it. ``python -m t2i_bench.demo.concept_images``
writes the reference images and kohya-style captions into ``concepts/olis/``.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml
from PIL import Image

from t2i_bench.demo.procedural import COLOURS, article, finish, new_canvas, random_box

CONCEPT_NAME = "olis"
TRIGGER = "olis"
CLASS_WORD = "toy"
CATEGORY = "object"
RING, DOT = (240, 200, 30), (130, 40, 170)
BACKGROUNDS = ("green", "blue", "white", "orange", "black", "red")
_SEED = 1234


def olis_image(background: str, rng: random.Random) -> Image.Image:
    """One image of the olis toy on ``background`` at a random position and size."""
    canvas, draw = new_canvas(COLOURS[background])
    x0, y0, x1, y1 = random_box(rng, 0.5, 0.75)
    side = x1 - x0
    width = side * 0.16
    draw.ellipse((x0, y0, x1, y1), fill=RING)
    draw.ellipse((x0 + width, y0 + width, x1 - width, y1 - width), fill=COLOURS[background])
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, side * 0.13
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=DOT)
    return finish(canvas)


def concept_dataset(n: int = len(BACKGROUNDS)) -> tuple[list[Image.Image], list[str]]:
    """The ``n`` (at most 6) reference images of ``olis`` and their captions, deterministic."""
    rng = random.Random(_SEED)
    backgrounds = BACKGROUNDS[:n]
    images = [olis_image(bg, rng) for bg in backgrounds]
    captions = [
        f"a photo of {TRIGGER} {CLASS_WORD} on {article(bg)} {bg} background" for bg in backgrounds
    ]
    return images, captions


def concept_descriptor(images_dir: str = CONCEPT_NAME) -> dict[str, object]:
    """The concept's YAML descriptor (``images`` is relative to the YAML file)."""
    return {
        "name": CONCEPT_NAME,
        "trigger": TRIGGER,
        "class_word": CLASS_WORD,
        "category": CATEGORY,
        "images": images_dir,
        "captions": True,
    }


def write_concept(concepts_dir: Path) -> Path:
    """Write ``<concepts_dir>/olis/img_00N.png`` + ``.txt`` and ``olis.yaml``; return the dir."""
    image_dir = concepts_dir / CONCEPT_NAME
    image_dir.mkdir(parents=True, exist_ok=True)
    for i, (image, text) in enumerate(zip(*concept_dataset(), strict=True)):
        image.save(image_dir / f"img_{i:03d}.png", optimize=False)
        (image_dir / f"img_{i:03d}.txt").write_text(text + "\n", "utf-8")
    yaml_text = yaml.safe_dump(concept_descriptor(), sort_keys=False)
    (concepts_dir / f"{CONCEPT_NAME}.yaml").write_text(yaml_text, "utf-8")
    return image_dir


def main() -> None:
    """Write the demo concept into ``concepts/`` of the current directory."""
    image_dir = write_concept(Path("concepts"))
    print(f"wrote {len(list(image_dir.glob('*.png')))} images to {image_dir}")


if __name__ == "__main__":
    main()

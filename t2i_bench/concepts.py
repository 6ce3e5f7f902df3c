"""Concepts: what an adapter learned, with its reference images and captions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from t2i_bench.config import _first_error, load_yaml
from t2i_bench.errors import BenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class ConceptSpec(BaseModel):
    """The YAML form of a concept (``concepts/*.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    trigger: str
    class_word: str = ""
    category: str = "object"
    images: Path = Field(description="folder of reference images, relative to the YAML")
    captions: bool = Field(True, description="kohya-style .txt caption beside each image")
    clip_t_rule: Literal["keep", "drop", "class"] = Field(
        "class", description="CLIP-T text: keep the descriptor, drop it, or keep the class word"
    )


@dataclass(frozen=True)
class Concept:
    """A loaded concept: descriptor, reference images and their captions."""

    name: str
    trigger: str
    class_word: str
    category: str
    image_paths: tuple[Path, ...]
    captions: tuple[str, ...]
    clip_t_rule: str = "class"

    @property
    def descriptor(self) -> str:
        """Trigger word plus class word, e.g. ``olis toy``: what ``{}`` stands for."""
        return f"{self.trigger} {self.class_word}".strip()

    def text_for_clip_t(self, prompt: str) -> str:
        """The prompt as CLIP-T sees it: the trigger removed, the class word kept or not."""
        if self.clip_t_rule == "keep":
            return prompt
        fill = self.class_word if self.clip_t_rule == "class" else ""
        pattern = (
            re.escape(self.descriptor) if self.descriptor in prompt else re.escape(self.trigger)
        )
        text = re.sub(rf"\b{pattern}\b", fill, prompt)
        return " ".join(text.split())


def load_concept(path: Path) -> Concept:
    """Load a concept YAML; missing or empty image folders are one-line errors."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise BenchError("a concept must be a YAML mapping", path)
    try:
        spec = ConceptSpec.model_validate(data)
    except ValidationError as exc:
        raise BenchError(_first_error(exc), path) from None
    folder = spec.images if spec.images.is_absolute() else (path.parent / spec.images).resolve()
    if not folder.is_dir():
        raise BenchError(f"images: reference image folder not found: {folder}", path)
    images = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not images:
        raise BenchError(f"images: no reference images in {folder}", path)
    for image in images:
        check_image_file(image)
    captions = []
    for image in images:
        txt = image.with_suffix(".txt")
        if spec.captions and txt.is_file():
            captions.append(" ".join(txt.read_text(encoding="utf-8").split()))
        else:
            captions.append(f"a photo of {spec.trigger} {spec.class_word}".strip())
    return Concept(
        name=spec.name,
        trigger=spec.trigger,
        class_word=spec.class_word,
        category=spec.category,
        image_paths=images,
        captions=tuple(captions),
        clip_t_rule=spec.clip_t_rule,
    )


def check_image_file(path: Path) -> None:
    """A reference image must decode completely; a truncated or corrupt file is an error."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise BenchError(f"unreadable reference image ({exc})", path) from None


def find_concepts(folder: Path) -> list[Path]:
    """The concept YAML files in a folder (for ``t2i-bench list concepts``)."""
    return sorted(folder.glob("*.yaml"))

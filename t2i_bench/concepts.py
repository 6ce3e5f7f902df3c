"""Concepts: what an adapter learned, with its reference images and captions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from t2i_bench.config import _first_error, load_yaml
from t2i_bench.errors import BenchError
from t2i_bench.files import read_text
from t2i_bench.images import open_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: Largest caption file read (kohya captions are a line or two).
MAX_CAPTION_BYTES = 64 * 1024


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

    @field_validator("trigger")
    @classmethod
    def _trigger_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("trigger must not be empty")
        return value


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
        return remove_trigger(prompt, self.trigger, self.class_word, self.clip_t_rule)


def phrase_pattern(phrase: str) -> str:
    """A regex matching ``phrase`` as a whole phrase, whatever its characters: its words
    separated by any whitespace, and no word character glued to an edge that is one."""
    words = phrase.split()
    body = r"\s+".join(re.escape(word) for word in words)
    left = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    right = r"(?!\w)" if re.search(r"\w$", words[-1]) else ""
    return left + body + right


def remove_trigger(prompt: str, trigger: str, class_word: str = "", rule: str = "class") -> str:
    """``prompt`` with every occurrence of the descriptor (trigger + class word), or of the
    trigger alone, replaced by the class word (``rule="class"``) or by nothing (``"drop"``);
    ``"keep"`` returns it unchanged. Matching ignores case (CLIP's tokenizer lowercases);
    whitespace is normalised."""
    if rule == "keep":
        return prompt
    fill = class_word.strip() if rule == "class" else ""
    phrases = [f"{trigger} {class_word}", trigger] if class_word.strip() else [trigger]
    pattern = "|".join(phrase_pattern(p) for p in phrases)
    text = re.sub(pattern, lambda _: fill, prompt, flags=re.IGNORECASE)
    return " ".join(text.split())


def load_concept(path: Path) -> Concept:
    """Load a concept YAML; missing or empty image folders are one-line errors."""
    data = load_yaml(path, "concept")
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
        if spec.captions and (txt.exists() or txt.is_symlink()):
            text = read_text(txt, "caption", MAX_CAPTION_BYTES)
            captions.append(" ".join(text.split()))
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
    """A reference image must be a regular file that decodes completely to RGB
    (:func:`t2i_bench.images.open_rgb`); anything else is a one-line error."""
    open_rgb(path, "reference image")


def find_concepts(folder: Path) -> list[Path]:
    """The concept YAML files in a folder (for ``t2i-bench list concepts``)."""
    return sorted(folder.glob("*.yaml"))

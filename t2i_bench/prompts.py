"""Prompt sets: versioned YAML templates per prompt type, expanded per concept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from t2i_bench.concepts import Concept
from t2i_bench.config import _first_error, load_yaml
from t2i_bench.errors import BenchError


class PromptSet(BaseModel):
    """``prompts/*.yaml``: ``{}`` stands for the concept descriptor."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    description: str = ""
    trigger: list[str] = Field(default_factory=lambda: ["{}"])
    alter: list[str] = Field(default_factory=list)
    style: list[str] = Field(default_factory=list)
    agnostic: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Prompt:
    """One prompt to render: its type, its template and the final text."""

    prompt_type: str
    template: str
    text: str


def load_prompt_set(path: Path) -> PromptSet:
    data = load_yaml(path, "prompt set")
    if not isinstance(data, dict):
        raise BenchError("a prompt set must be a YAML mapping", path)
    try:
        prompt_set = PromptSet.model_validate(data)
    except ValidationError as exc:
        raise BenchError(_first_error(exc), path) from None
    for kind in ("trigger", "alter", "style"):
        for template in getattr(prompt_set, kind):
            if "{}" not in template:
                raise BenchError(f"{kind}: template has no '{{}}': {template!r}", path)
    for prompt in prompt_set.agnostic:
        if "{}" in prompt:
            raise BenchError(f"agnostic: prompt must not mention the concept: {prompt!r}", path)
    return prompt_set


def expand_prompts(
    prompt_set: PromptSet, concept: Concept, types: list[str], max_per_type: int | None = None
) -> list[Prompt]:
    """Every prompt of the requested types for one concept, in a stable order."""
    out: list[Prompt] = []
    for kind in types:
        if kind == "train":
            templates = list(dict.fromkeys(concept.captions))
            prompts = [Prompt("train", t, t) for t in templates]
        elif kind == "agnostic":
            prompts = [Prompt("agnostic", t, t) for t in prompt_set.agnostic]
        else:
            templates = getattr(prompt_set, kind)
            prompts = [Prompt(kind, t, t.replace("{}", concept.descriptor)) for t in templates]
        out.extend(prompts[:max_per_type] if max_per_type else prompts)
    return out

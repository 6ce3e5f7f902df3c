"""Prompt sets: versioned YAML templates per prompt type, expanded per concept.

Which keys a prompt set may hold, and what their templates must look like, come from the
prompt-type registry (:mod:`t2i_bench.prompt_types`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from t2i_bench.concepts import Concept
from t2i_bench.config import _first_error, load_yaml
from t2i_bench.errors import BenchError
from t2i_bench.hashing import stable_hash
from t2i_bench.prompt_types import PROMPT_SET_TYPES, PROMPT_TYPES


class PromptSet(BaseModel):
    """``prompts/*.yaml``: a list of templates per prompt type; ``{}`` stands for the concept
    descriptor."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    description: str = ""
    templates: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather_templates(cls, data: Any) -> Any:
        """The YAML lists each prompt type's templates at the top level."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        templates = {k: data.pop(k) for k in PROMPT_SET_TYPES if k in data}
        for kind in PROMPT_SET_TYPES:
            default = PROMPT_TYPES[kind].default_templates
            if kind not in templates and default:
                templates[kind] = list(default)
        data.setdefault("templates", {}).update(templates)
        return data

    def templates_for(self, kind: str) -> list[str]:
        return list(self.templates.get(kind, []))

    @property
    def identity(self) -> str:
        """A hash of the templates (what determines the prompts), not of the name."""
        return stable_hash(self.templates)


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
    for kind, templates in prompt_set.templates.items():
        mentions = PROMPT_TYPES[kind].mentions_concept
        for template in templates:
            if mentions and "{}" not in template:
                raise BenchError(f"{kind}: template has no '{{}}': {template!r}", path)
            if not mentions and "{}" in template:
                raise BenchError(f"{kind}: prompt must not mention the concept: {template!r}", path)
    return prompt_set


def expand_prompts(
    prompt_set: PromptSet, concept: Concept, types: list[str], max_per_type: int | None = None
) -> list[Prompt]:
    """Every prompt of the requested types for one concept, in a stable order."""
    out: list[Prompt] = []
    for kind in types:
        spec = PROMPT_TYPES[kind]
        if spec.source == "captions":
            prompts = [Prompt(kind, t, t) for t in dict.fromkeys(concept.captions)]
        elif spec.mentions_concept:
            templates = prompt_set.templates_for(kind)
            prompts = [Prompt(kind, t, t.replace("{}", concept.descriptor)) for t in templates]
        else:
            prompts = [Prompt(kind, t, t) for t in prompt_set.templates_for(kind)]
        out.extend(prompts[:max_per_type] if max_per_type else prompts)
    return out

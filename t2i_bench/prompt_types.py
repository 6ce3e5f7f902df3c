"""The prompt types and evaluation axes: one registry, read by config, prompts, plan, metrics,
analysis and the report.

A prompt type says where its prompts come from (the concept's captions or a prompt set),
whether they mention the concept (``{}`` stands for its descriptor), which concept fields it
needs and which evaluation axes it serves. A metric names its axis; the prompt types it
applies to follow from this table unless the metric lists them itself. Adding a prompt type
is one entry here (and its templates in the prompt sets that use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Axis:
    """What a family of metrics measures, and which way the report reads it."""

    name: str
    description: str


AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("fidelity", "does the image show the learned concept (vs its reference images)"),
        Axis("controllability", "does the image follow the rest of the prompt"),
        Axis("diversity", "do images of one prompt differ from each other"),
        Axis("preservation", "are unrelated prompts drawn as the base model drew them"),
        Axis("preference", "would people prefer the image (learned human-preference models)"),
    )
}


@dataclass(frozen=True)
class PromptType:
    """One kind of prompt rendered for every checkpoint and concept."""

    name: str
    description: str
    source: Literal["captions", "prompt_set"]  # the concept's captions, or a prompt-set list
    mentions_concept: bool  # templates hold "{}" (the descriptor); others must not
    concept_fields: tuple[str, ...]  # the concept fields its prompts are made from
    axes: tuple[str, ...]  # the evaluation axes it serves
    default_templates: tuple[str, ...] = ()  # used when a prompt set has no list for it


PROMPT_TYPES: dict[str, PromptType] = {
    t.name: t
    for t in (
        PromptType(
            "train",
            "the training captions (kohya .txt beside each reference image)",
            "captions",
            True,
            ("captions",),
            ("fidelity",),
        ),
        PromptType(
            "trigger",
            "the descriptor alone (trigger word + class word)",
            "prompt_set",
            True,
            ("trigger", "class_word"),
            ("fidelity", "diversity", "preference"),
            ("{}",),
        ),
        PromptType(
            "alter",
            "generalization: the concept with its content altered",
            "prompt_set",
            True,
            ("trigger", "class_word"),
            ("fidelity", "controllability", "diversity", "preference"),
        ),
        PromptType(
            "style",
            "generalization: the concept in another style",
            "prompt_set",
            True,
            ("trigger", "class_word"),
            ("controllability", "diversity", "preservation", "preference"),
        ),
        PromptType(
            "agnostic",
            "prompts that never mention the concept, compared with the base model's images",
            "prompt_set",
            False,
            (),
            ("preservation", "preference"),
        ),
    )
}

#: Prompt-type names in pipeline order.
PROMPT_TYPE_NAMES: tuple[str, ...] = tuple(PROMPT_TYPES)
#: Prompt types whose templates come from a prompt set (the prompt-set YAML's list keys).
PROMPT_SET_TYPES: tuple[str, ...] = tuple(
    t.name for t in PROMPT_TYPES.values() if t.source == "prompt_set"
)


def types_for_axis(axis: str) -> tuple[str, ...]:
    """The prompt types that serve ``axis``, in pipeline order."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; known: {', '.join(AXES)}")
    return tuple(t.name for t in PROMPT_TYPES.values() if axis in t.axes)


def prompt_type_order(name: str) -> tuple[int, str]:
    """A sort key: registered types in pipeline order, then any other name alphabetically."""
    return (PROMPT_TYPE_NAMES.index(name) if name in PROMPT_TYPES else len(PROMPT_TYPES), name)

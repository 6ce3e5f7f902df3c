"""Metric plugins: what a metric declares, the data it sees, and the registry.

A metric never loads a model: it reads embeddings that the embed stage computed once per
image per backbone. Two kinds, as in HELM: per-image metrics (a value per image) and set
metrics (one value per group of images, maybe against a reference set).

A metric declares everything it reads — backbone roles, prompt types (or the axis they follow
from), whether it reads the concept's reference images, the texts it embeds, and any image
variants beside a group's own images — and plan, embed and score act on those declarations
alone: no metric is named outside its own module. A group hands a metric only what it
declared, so an undeclared input fails loudly instead of escaping the value's identity.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np

from t2i_bench.analysis.bootstrap import ResamplePlan
from t2i_bench.concepts import Concept
from t2i_bench.errors import BenchError
from t2i_bench.prompt_types import AXES, PROMPT_TYPES, types_for_axis
from t2i_bench.store import SET_ITEM  # noqa: F401  (the item of a set metric's value)


@dataclass(frozen=True)
class ImageVariant:
    """Images a metric reads beside a group's own: one per image of the group, rendered by the
    base model or by the group's own checkpoint, for the same seed and either the same prompt
    or a rewritten one. A variant with a rewrite adds render jobs to the plan."""

    name: str
    renderer: Literal["base", "self"] = "base"
    rewrite: Callable[[Concept, str], str] | None = None  # (concept, prompt) -> prompt
    description: str = ""

    @property
    def job_tag(self) -> str:
        """The tag of the extra jobs this variant plans ("" when it reuses planned images)."""
        return self.name if self.rewrite is not None else ""


#: The base model's image for the same prompt and seed.
BASE_IMAGE = ImageVariant("base", "base", None, "the base model's image for the same prompt/seed")


@dataclass
class Group:
    """The images of one (checkpoint, concept, prompt type), in a stable order, with what the
    metric at hand declared: reference images, variant images, backbones."""

    checkpoint: str
    concept: Concept
    prompt_type: str
    image_keys: list[str]
    image_shas: list[str]
    prompts: list[str]
    seeds: list[int]
    reference_shas: list[str]
    features: Callable[[str, list[str]], np.ndarray] = field(repr=False)
    text_features: Callable[[str, list[str]], np.ndarray] = field(repr=False)
    backbone: Callable[[str], Any] = field(repr=False, default=None)  # role -> loaded Backbone
    head: Callable[[str, str], Any] = field(repr=False, default=None)  # (head, role) -> Head
    templates: list[str] = field(default_factory=list)
    variants: dict[str, list[str | None]] = field(default_factory=dict)  # name -> sha per image
    notes: list[str] = field(default_factory=list)  # warnings metrics raise about their values
    roles: tuple[str, ...] | None = None  # backbone roles the metric declared (None: any)

    def for_metric(self, metric: Metric) -> Group:
        """This group as ``metric`` may see it: only the inputs it declared."""
        return replace(
            self,
            reference_shas=self.reference_shas if metric.uses_references else [],
            variants={v.name: self.variants.get(v.name, []) for v in metric.variants},
            roles=metric.roles,
            notes=self.notes,
        )

    def _check_role(self, role: str) -> None:
        if self.roles is not None and role not in self.roles:
            raise BenchError(f"a metric read backbone role {role!r} without declaring it")

    def image_features(self, role: str) -> np.ndarray:
        self._check_role(role)
        return self.features(role, self.image_shas)

    def reference_features(self, role: str) -> np.ndarray:
        self._check_role(role)
        if not self.reference_shas:
            raise BenchError("a metric read reference images without declaring uses_references")
        return self.features(role, self.reference_shas)

    def variant(self, name: str) -> list[str | None]:
        """The sha of the variant image of each of the group's images (None where missing)."""
        if name not in self.variants:
            raise BenchError(f"a metric read image variant {name!r} without declaring it")
        return self.variants[name] or [None] * len(self.image_shas)

    def paired(self, name: str) -> tuple[list[int], list[str]]:
        """Indices of images that have a ``name`` variant, and the variants' shas."""
        shas = self.variant(name)
        index = [i for i, sha in enumerate(shas) if sha is not None]
        return index, [shas[i] for i in index]  # type: ignore[misc]

    @property
    def base_shas(self) -> list[str | None]:
        """The base model's image for the same prompt and seed (the ``BASE_IMAGE`` variant)."""
        return self.variant(BASE_IMAGE.name)

    def paired_base(self) -> tuple[list[int], list[str]]:
        return self.paired(BASE_IMAGE.name)

    def resampled(self, index: np.ndarray | list[int]) -> Group:
        """The group with its images (and their variants) taken at ``index``, repeats allowed:
        one bootstrap resample. Notes raised on it are not kept."""
        idx = [int(i) for i in index]

        def pick(values: list) -> list:
            return [values[i] for i in idx] if values else values

        return replace(
            self,
            image_keys=pick(self.image_keys),
            image_shas=pick(self.image_shas),
            prompts=pick(self.prompts),
            seeds=pick(self.seeds),
            templates=pick(self.templates),
            variants={name: pick(shas) for name, shas in self.variants.items()},
            notes=[],
        )

    def by_prompt(self) -> list[list[int]]:
        """Indices of the group's images, one list per prompt (in order of appearance)."""
        index: dict[str, list[int]] = {}
        for i, prompt in enumerate(self.prompts):
            index.setdefault(prompt, []).append(i)
        return list(index.values())


class Metric(ABC):
    """A metric plugin. Subclasses set the class attributes and implement ``compute``.

    ``prompt_types`` defaults to the prompt types that serve ``axis`` (see
    :mod:`t2i_bench.prompt_types`); set it to override.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    axis: ClassVar[str] = ""  # fidelity, controllability, diversity, preservation, preference
    higher_is_better: ClassVar[bool] = True
    backbone: ClassVar[str | None] = None  # main backbone role: clip, dino, inception, …
    extra_backbones: ClassVar[tuple[str, ...]] = ()  # further roles it reads
    head: ClassVar[str | None] = None  # a head applied to the backbone's cached embeddings
    prompt_types: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "set"  # "image" or "set"
    needs_text: ClassVar[bool] = False  # embeds texts(group) with its backbone's text encoder
    uses_references: ClassVar[bool] = False  # reads the concept's reference images
    variants: ClassVar[tuple[ImageVariant, ...]] = ()
    convention: ClassVar[str] = ""
    description: ClassVar[str] = ""
    baseline: ClassVar[str] = "none"  # reference-vs-reference context: "split", "all", "none"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.axis and "prompt_types" not in cls.__dict__:
            cls.prompt_types = types_for_axis(cls.axis)

    @property
    def roles(self) -> tuple[str, ...]:
        """Every backbone role this metric reads."""
        main = (self.backbone,) if self.backbone else ()
        return tuple(dict.fromkeys(main + self.extra_backbones))

    @property
    def compares_with_base(self) -> bool:
        """True when it reads images the base model rendered: never computed for the base
        row itself (it would compare the base model with itself)."""
        return any(v.renderer == "base" for v in self.variants)

    def applies_to(self, group: Group, base_name: str) -> bool:
        """Whether this metric scores ``group`` (its prompt type; not the base row when it
        compares with base-model images)."""
        if group.prompt_type not in self.prompt_types:
            return False
        return not (self.compares_with_base and group.checkpoint == base_name)

    def texts(self, group: Group) -> list[str]:
        """Texts this metric reads for ``group`` (text-image metrics only); part of the
        identity of its values."""
        return []

    def parameters(self) -> dict[str, Any]:
        """Settings that change its values beyond the class attributes (part of the identity)."""
        return {}

    @abstractmethod
    def compute(self, group: Group) -> dict[str, float]:
        """item -> value: image key -> value for per-image metrics, ``SET_ITEM`` for sets."""

    def replicates(self, group: Group, plan: ResamplePlan) -> np.ndarray:
        """A set metric's value on each bootstrap resample of the group's images.

        ``plan`` (:func:`~t2i_bench.analysis.bootstrap.resample_plan`) gives per resample how
        often each image (and prompt) was drawn. Returns ``(n_boot,)`` float64, NaN where a
        resample has no value. The default computes :meth:`compute` on each resampled group;
        metrics whose value is a function of per-image terms override it with a vectorised
        form giving the same values.
        """
        out = np.full(plan.n_boot, np.nan)
        for b in range(plan.n_boot):
            try:
                out[b] = self.compute(group.resampled(plan.indices(b)))[SET_ITEM]
            except (ValueError, ArithmeticError, np.linalg.LinAlgError):
                continue
        return out

    def reference_pairs(self, group: Group) -> list[Any]:
        """Generated image ↔ nearest reference image pairs that explain this metric's values,
        shown side by side in the report (objects with ``image_key``, ``reference_sha``,
        ``distance``, ``threshold`` and ``is_copy``); none by default."""
        return []


_REGISTRY: dict[str, type[Metric]] = {}
_PLUGINS_LOADED = False
ENTRY_POINT_GROUP = "t2i_bench.metrics"


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator; a duplicate or malformed declaration is a programming error."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"metric name {cls.name!r} missing or registered twice")
    if cls.axis and cls.axis not in AXES:
        raise ValueError(f"metric {cls.name}: unknown axis {cls.axis!r}")
    if not cls.prompt_types or any(p not in PROMPT_TYPES for p in cls.prompt_types):
        raise ValueError(f"metric {cls.name}: prompt types {cls.prompt_types!r} not registered")
    if cls.kind not in ("image", "set"):
        raise ValueError(f"metric {cls.name}: kind must be 'image' or 'set'")
    if len({v.name for v in cls.variants}) != len(cls.variants):
        raise ValueError(f"metric {cls.name}: two image variants share a name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_plugins() -> None:
    """Register the built-in metrics, then those of installed packages (entry points)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import t2i_bench.metrics.plugins  # noqa: F401  (registers the built-in metrics)
    from t2i_bench.plugins import load_entry_points

    load_entry_points(ENTRY_POINT_GROUP)


def available_metrics() -> dict[str, type[Metric]]:
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get_metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name fails with the close matches."""
    known = available_metrics()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
        raise BenchError(f"unknown metric {name!r}{hint}")
    return known[name]()


def image_variants(metrics: list[Metric]) -> dict[str, ImageVariant]:
    """Every image variant the metrics declare, by name; one name means one variant."""
    found: dict[str, ImageVariant] = {}
    for metric in metrics:
        for variant in metric.variants:
            if found.setdefault(variant.name, variant) != variant:
                raise BenchError(
                    f"metric {metric.name}: image variant {variant.name!r} is declared "
                    "differently by another metric; give it another name"
                )
    return found

"""Run configuration: pydantic models, loaded from YAML, saved resolved into the run.

Relative paths in a config are relative to the config file's folder. Every validation
error becomes a one-line :class:`BenchError` naming the file and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from t2i_bench.columns import BASE_CHECKPOINT, hyperparameter_name_problem
from t2i_bench.errors import BenchError
from t2i_bench.files import require_regular_file
from t2i_bench.prompt_types import PROMPT_TYPE_NAMES, PROMPT_TYPES
from t2i_bench.yamlfile import load_yaml

#: Multiple that image sides must be: the VAE of every SD 1.x/2.x/XL model (and the tiny one)
#: downsamples by 8, and diffusers' pipelines refuse other sizes.
SIZE_MULTIPLE = 8
MAX_SIDE = 8192
#: Default most images one plan may hold (raise it with ``max_images`` or ``--max-images``).
MAX_IMAGES = 200_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BaseModelConfig(_Strict):
    """The model the adapters were trained on; always rendered as the baseline row."""

    source: str = Field(
        "tiny", description="'tiny', a hub id, a local diffusers folder or a single .safetensors"
    )
    name: str = "base"
    seed: int = Field(0, description="init seed of the 'tiny' base model")
    config: str | None = Field(
        None,
        description="single-file base models: a diffusers folder or hub id to take the "
        "pipeline, scheduler and tokenizer configs from (default: the family's reference)",
    )
    prediction_type: Literal["epsilon", "v_prediction"] | None = Field(
        None,
        description="override the scheduler's prediction type; needed for SD 2.x single "
        "files (epsilon for 512px 'base' models, v_prediction for 768px ones)",
    )
    vae: str | None = Field(
        None,
        description="a VAE to use instead of the model's (diffusers folder or hub id), e.g. "
        "madebyollin/sdxl-vae-fp16-fix for SDXL in float16",
    )
    variant: str | None = Field(
        None, description="weights variant of a diffusers folder or hub id, e.g. fp16"
    )

    @field_validator("name")
    @classmethod
    def _base_row_name(cls, value: str) -> str:
        if value != BASE_CHECKPOINT:
            raise ValueError(
                f"the base model's row is called {BASE_CHECKPOINT!r} in every table the "
                "analysis reads; other names are not supported"
            )
        return value


class SamplerConfig(_Strict):
    scheduler: Literal["ddim", "euler", "euler_a", "dpm++", "pndm"] = "ddim"
    steps: int = Field(20, ge=1, le=1000)
    guidance_scale: float = Field(7.5, ge=0)
    width: int = Field(512, ge=SIZE_MULTIPLE, le=MAX_SIDE)
    height: int = Field(512, ge=SIZE_MULTIPLE, le=MAX_SIDE)
    negative_prompt: str = ""
    batch_size: int = Field(8, ge=1, le=4096)

    @field_validator("width", "height")
    @classmethod
    def _fits_the_vae(cls, value: int) -> int:
        if value % SIZE_MULTIPLE:
            raise ValueError(
                f"{value} is not a multiple of {SIZE_MULTIPLE} (the VAE downsamples by "
                f"{SIZE_MULTIPLE}); use {value // SIZE_MULTIPLE * SIZE_MULTIPLE} or "
                f"{(value // SIZE_MULTIPLE + 1) * SIZE_MULTIPLE}"
            )
        return value


class CheckpointConfig(_Strict):
    """One adapter file (``path``) or many (``glob``), with optional overrides."""

    path: Path | None = None
    glob: str | None = None
    name: str | None = None
    multiplier: float = 1.0
    multipliers: list[float] | None = Field(
        None, description="a multiplier sweep: one extra row per value"
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    token: str | None = Field(None, description="textual inversion: the token to bind")

    @field_validator("glob")
    @classmethod
    def _glob_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("glob must not be empty")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            problem = hyperparameter_name_problem(name)
            if problem:
                raise ValueError(problem)
            if not isinstance(item, (str, int, float, bool)) and item is not None:
                raise ValueError(f"{name}: a hyperparameter is a number or a string")
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{name}: {item} is not a finite number")
        return value

    @model_validator(mode="after")
    def _path_or_glob(self) -> CheckpointConfig:
        if (self.path is None) == (self.glob is None):
            raise ValueError("give exactly one of 'path' or 'glob'")
        if self.glob is not None and self.name is not None:
            raise ValueError("'name' applies to a single 'path', not to a 'glob'")
        return self


class PromptsConfig(_Strict):
    set: Path = Field(Path("prompts/default.yaml"), description="a prompt-set YAML file")
    types: list[str] = Field(default_factory=lambda: list(PROMPT_TYPE_NAMES))
    max_per_type: int | None = Field(None, ge=1, description="keep the first N of each type")

    @field_validator("types")
    @classmethod
    def _registered_types(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in PROMPT_TYPES:
                raise ValueError(f"unknown prompt type {name!r}; known: {', '.join(PROMPT_TYPES)}")
        return _distinct(value)


ClipBackbone = Literal[
    "clip_vit_b32", "clip_vit_l14", "clip_vit_l14_openai", "clip_vit_l14_336", "clip_demo"
]
DinoBackbone = Literal["dinov2_vitl14", "dino_vits16"]


class BackboneChoice(BaseModel):
    """A role's backbone with loader options, e.g. ``{name: clip_vit_l14, weights: PATH}``.

    ``name`` defaults to the role's default backbone; every other key goes to the backbone's
    loader unchanged (``weights``, ``tokenizer``, ``processor`` and backbone-specific ones such
    as LPIPS's ``alexnet_weights``; docs/models.md lists them). A key the backbone does not
    take is one line when the run starts. Options win over the ``T2I_BENCH_*`` variables."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    weights: str | None = Field(None, description="weights: local file/folder or hub id/tag")
    tokenizer: str | None = Field(None, description="tokenizer folder or hub id")
    processor: str | None = Field(None, description="image processor folder or hub id")

    def options(self) -> dict[str, Any]:
        """The loader options: every key but ``name`` that is set."""
        data = {"weights": self.weights, "tokenizer": self.tokenizer, "processor": self.processor}
        data.update(self.model_extra or {})
        return {k: v for k, v in data.items() if v is not None}


class BackbonesConfig(_Strict):
    """Which registered backbone plays each role; metrics ask for roles, never models.

    A role is a backbone name (``clip: clip_vit_b32``) or a :class:`BackboneChoice` with loader
    options (``clip: {name: clip_vit_l14, weights: /models/clip}``)."""

    profile: Literal["tiny", "real"] = "tiny"
    clip: ClipBackbone | BackboneChoice = "clip_vit_l14"
    dino: DinoBackbone | BackboneChoice = "dinov2_vitl14"
    inception: str | BackboneChoice = "inception_v3_fid"
    lpips: str | BackboneChoice = "lpips_alex"
    vgg: str | BackboneChoice = "vgg19_gram"
    pickscore: str | BackboneChoice = "pickscore"
    image_reward: str | BackboneChoice = "image_reward"
    # roles named after their backbone (the human-aligned metrics ask for these by name)
    dreamsim: str | BackboneChoice = "dreamsim"
    hpsv2: str | BackboneChoice = "hpsv2"
    clip_vit_l14_336: str | BackboneChoice = "clip_vit_l14_336"
    clip_vit_l14_openai: str | BackboneChoice = "clip_vit_l14_openai"  # the aesthetic head's
    batch_size: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _known_names(self) -> BackbonesConfig:
        for role, allowed in (("clip", ClipBackbone), ("dino", DinoBackbone)):
            value = getattr(self, role)
            if isinstance(value, BackboneChoice) and value.name is not None:
                if value.name not in get_args(allowed):
                    names = ", ".join(repr(n) for n in get_args(allowed))
                    raise ValueError(f"{role}.name must be one of {names}, not {value.name!r}")
        return self

    def role(self, role: str) -> tuple[str, dict[str, Any]]:
        """The registered backbone that plays ``role`` and its loader options (a role that is
        not a field names the backbone itself, for plugins)."""
        value = getattr(self, role, None) if role in type(self).model_fields else None
        if isinstance(value, BackboneChoice):
            return value.name or str(type(self).model_fields[role].default), value.options()
        return str(value or role), {}

    def resolve_paths(self, root: Path) -> None:
        """Make the options that name files relative to the config's folder absolute."""
        for role in type(self).model_fields:
            choice = getattr(self, role)
            if not isinstance(choice, BackboneChoice):
                continue
            for key, value in choice.options().items():
                if not isinstance(value, str):
                    continue
                path = Path(value).expanduser()
                if not path.is_absolute() and (root / path).exists():
                    path = (root / path).resolve()
                if path.is_absolute():
                    setattr(choice, key, str(path))


class AnalysisConfig(_Strict):
    """The hyperparameter analysis (docs/analysis.md); ``t2i-bench analyze`` options override it."""

    by: list[str] = Field(
        default_factory=list,
        description="one analysis per value of each column (category, concept, algo…), "
        "plus the pooled one",
    )
    where: str | None = Field(
        None, description="analyse only the checkpoints whose hyperparameters satisfy this"
    )
    features: list[str] | None = Field(None, description="hyperparameters to use as features")
    categorical: list[str] | None = Field(None, description="features to treat as categories")
    targets: list[str] | None = Field(None, description="{metric}.{prompt_type} columns")
    normalise: Literal["raw", "rank"] = Field(
        "raw", description="fit raw means or direction-aware rank scores (1 = best)"
    )
    fold_confounded: bool = Field(True, description="fold confounded features (else flag)")
    r2_cv_threshold: float | None = Field(
        None,
        description="at or below this cross-validated R² a warning says the fit does not "
        "generalise (default: t2i_bench.analysis.importance.R2_CV_THRESHOLD, 0.1)",
    )

    @field_validator("where")
    @classmethod
    def _where_is_valid(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from t2i_bench.analysis.where import parse_where

        try:
            parse_where(value)
        except BenchError as exc:
            raise ValueError(str(exc)) from None
        return value


class RunConfig(_Strict):
    """A whole benchmark run."""

    name: str = "run"
    output_dir: Path = Path("results/run")
    base_model: BaseModelConfig = Field(default_factory=BaseModelConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    checkpoints: list[CheckpointConfig] = Field(default_factory=list)
    concepts: list[Path] = Field(min_length=1)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    images_per_prompt: int = Field(4, ge=1)
    seed: int = Field(0, ge=0, description="seed of the first image of every prompt")
    metrics: list[str] = Field(default_factory=lambda: list(_default_metrics()))
    max_images: int = Field(
        MAX_IMAGES, ge=1, description="refuse plans with more images (a typo guard; raise it)"
    )
    backbones: BackbonesConfig = Field(default_factory=BackbonesConfig)
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads per worker for rendering and embedding; CPU float results "
        "depend on it, so every executor uses the same value (default: this machine's)",
    )
    filename_pattern: str | None = Field(
        None, description="regex with named groups read as hyperparameters from file names"
    )
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)

    @field_validator("metrics")
    @classmethod
    def _distinct_metrics(cls, value: list[str]) -> list[str]:
        return _distinct(value)

    @field_validator("filename_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            groups = re.compile(value).groupindex
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        for name in groups:
            problem = hyperparameter_name_problem(name)
            if problem:
                raise ValueError(f"group {name!r}: {problem}")
        return value

    @model_validator(mode="after")
    def _seeds_fit(self) -> RunConfig:
        last = self.seed + self.images_per_prompt - 1
        if last > 2**63 - 1:
            raise ValueError(f"seed + images_per_prompt - 1 = {last} is over 2**63 - 1")
        return self

    def resolve_paths(self, root: Path) -> RunConfig:
        """Return a copy with every relative path made absolute against ``root``."""

        def absolute(p: Path) -> Path:
            return p if p.is_absolute() else (root / p).resolve()

        data = self.model_copy(deep=True)
        data.output_dir = absolute(data.output_dir)
        data.concepts = [absolute(p) for p in data.concepts]
        data.prompts.set = absolute(data.prompts.set)
        for ckpt in data.checkpoints:
            if ckpt.path is not None:
                ckpt.path = absolute(ckpt.path)
            if ckpt.glob is not None and not Path(ckpt.glob).is_absolute():
                ckpt.glob = str(root / ckpt.glob)
        data.backbones.resolve_paths(root)
        base = data.base_model
        for field in ("source", "config", "vae"):
            src = getattr(base, field)
            if (
                src
                and src != "tiny"
                and (src.startswith(".") or "/" in src)
                and (root / src).exists()
            ):
                setattr(base, field, str((root / src).resolve()))
        return data


def _default_metrics() -> tuple[str, ...]:
    from t2i_bench.metrics.plugins import DEFAULT_METRICS

    return DEFAULT_METRICS


def _distinct(values: list[str]) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"listed twice: {', '.join(map(str, repeated))}")
    return values


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    more = len(exc.errors()) - 1
    return f"{where}: {msg}" + (f" (and {more} more error(s))" if more else "")


def load_config(
    path: Path,
    output_dir: Path | None = None,
    max_images: int | None = None,
    here: bool = True,
) -> RunConfig:
    """Load, validate and resolve a run config; check that referenced files exist and, when
    it is to run ``here``, that its device is present (``max_images`` overrides the
    config's). ``t2i-bench plan`` estimates a run meant for another machine: ``here=False``."""
    path = Path(path)
    data = load_yaml(path, "config")
    if not isinstance(data, dict):
        raise BenchError("a config must be a YAML mapping", path)
    if max_images is not None:
        data["max_images"] = max_images
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise BenchError(_first_error(exc), path) from None
    if config.images_per_prompt > config.max_images:  # the whole plan is counted later
        raise BenchError(
            f"images_per_prompt: {config.images_per_prompt:,} alone is over max_images "
            f"{config.max_images:,}; raise max_images (or pass --max-images) if you mean it",
            path,
        )
    config = config.resolve_paths(path.parent.resolve())
    if output_dir is not None:
        config.output_dir = Path(output_dir).resolve()
    for i, concept in enumerate(config.concepts):
        if not concept.exists():
            raise BenchError(f"concepts.{i}: concept file not found: {concept}", path)
        require_regular_file(concept, "concept")
    if not config.prompts.set.exists():
        raise BenchError(f"prompts.set: prompt set not found: {config.prompts.set}", path)
    require_regular_file(config.prompts.set, "prompt set")
    from t2i_bench.validate import check_device, check_metrics, check_paths

    check_paths(config, path)
    check_metrics(config.metrics, path)
    if here:
        check_device(config.device, path)
    return config


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML (stable key order)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

"""Run configuration: pydantic models, loaded from YAML, saved resolved into the run.

Relative paths in a config are relative to the config file's folder. Every validation
error becomes a one-line :class:`BenchError` naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from t2i_bench.errors import BenchError
from t2i_bench.prompt_types import PROMPT_TYPE_NAMES, PROMPT_TYPES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class SamplerConfig(_Strict):
    scheduler: Literal["ddim", "euler", "euler_a", "dpm++", "pndm"] = "ddim"
    steps: int = Field(20, ge=1, le=1000)
    guidance_scale: float = Field(7.5, ge=0)
    width: int = Field(512, ge=8)
    height: int = Field(512, ge=8)
    negative_prompt: str = ""
    batch_size: int = Field(8, ge=1)


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
        if len(set(value)) != len(value):
            raise ValueError("a prompt type is listed twice")
        return value


class BackbonesConfig(_Strict):
    """Which registered backbone plays each role; metrics ask for roles, never models."""

    profile: Literal["tiny", "real"] = "tiny"
    clip: Literal[
        "clip_vit_b32", "clip_vit_l14", "clip_vit_l14_openai", "clip_vit_l14_336", "clip_demo"
    ] = "clip_vit_l14"
    dino: Literal["dinov2_vitl14", "dino_vits16"] = "dinov2_vitl14"
    inception: str = "inception_v3_fid"
    lpips: str = "lpips_alex"
    vgg: str = "vgg19_gram"
    pickscore: str = "pickscore"
    image_reward: str = "image_reward"
    batch_size: int = Field(32, ge=1)

    def role(self, role: str) -> tuple[str, dict[str, Any]]:
        """The registered backbone that plays ``role`` and its loader options (a role that is
        not a field names the backbone itself, for plugins)."""
        return str(getattr(self, role, None) or role), {}


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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    more = len(exc.errors()) - 1
    return f"{where}: {msg}" + (f" (and {more} more error(s))" if more else "")


def load_yaml(path: Path) -> Any:
    """Read a YAML file; a missing or malformed file is a one-line BenchError."""
    if not path.is_file():
        raise BenchError("file not found", path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise BenchError(f"{where}{problem}", path) from None


def load_config(path: Path, output_dir: Path | None = None) -> RunConfig:
    """Load, validate and resolve a run config; check that referenced files exist."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise BenchError("a config must be a YAML mapping", path)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise BenchError(_first_error(exc), path) from None
    config = config.resolve_paths(path.parent.resolve())
    if output_dir is not None:
        config.output_dir = Path(output_dir).resolve()
    for i, concept in enumerate(config.concepts):
        if not concept.exists():
            raise BenchError(f"concepts.{i}: concept file not found: {concept}", path)
    if not config.prompts.set.is_file():
        raise BenchError(f"prompts.set: prompt set not found: {config.prompts.set}", path)
    return config


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML (stable key order)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

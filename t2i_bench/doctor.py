"""``t2i-bench doctor``: what can be checked before a long run, one line per problem.

Each check returns the problems it found as lines that say what is wrong and how to fix it;
an empty list means the check passed. With a run config, the doctor also checks, offline,
that every backbone the configured metrics need has its weights (the static describers: the
same check a run does first) and loads and runs on the configured device with one tiny
forward each, and that the base model loads and renders one image on the configured device
and dtype; from those forwards it estimates the disk and time the run needs.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from t2i_bench.compat import conflicts
from t2i_bench.errors import BenchError


@dataclass
class Diagnosis:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # estimates and facts, not problems


def environment_problems() -> list[str]:
    """Known-incompatible package pairs installed together."""
    return conflicts()


def config_problems(config_path: Path) -> list[str]:
    """Everything about a run config that can be checked without loading a model."""
    from t2i_bench.checkpoints import resolve_checkpoints
    from t2i_bench.concepts import load_concept
    from t2i_bench.config import load_config
    from t2i_bench.metrics.base import get_metric
    from t2i_bench.prompts import load_prompt_set

    try:
        config = load_config(config_path)
        for path in config.concepts:
            load_concept(path)
        load_prompt_set(config.prompts.set)
        for name in config.metrics:
            get_metric(name)
        checkpoints = resolve_checkpoints(config)
    except BenchError as exc:
        return [str(exc)]
    return [w for c in checkpoints if c.format == "unreadable" for w in c.warnings]


def _roles(config: Any) -> list[str]:
    from t2i_bench.metrics.base import get_metric

    return sorted({role for name in config.metrics for role in get_metric(name).roles})


@dataclass
class BackboneCheck:
    role: str
    name: str
    transient: bool = False
    feature_dim: int = 0
    seconds_per_image: float | None = None


def _smoke(backbone: Any) -> int:
    """One tiny forward through every path the metrics use; the feature dimension."""
    import numpy as np
    from PIL import Image

    from t2i_bench.backbones.base import Backbone

    images = [Image.new("RGB", (96, 80), (200, 120, 40)), Image.new("RGB", (64, 64), (20, 60, 90))]
    feats = backbone.embed_images(images)
    if feats.shape[0] != 2 or not np.isfinite(feats).all():
        raise RuntimeError(f"image features of shape {feats.shape} with non-finite values")
    if type(backbone).embed_texts is not Backbone.embed_texts:
        texts = backbone.embed_texts(["a photo of a cat", "a watercolor painting"])
        if not np.isfinite(texts).all():
            raise RuntimeError("non-finite text features")
    if hasattr(backbone, "score_embeddings"):
        scores = backbone.score_embeddings(feats, ["a photo of a cat", "a dog"])
        if not np.isfinite(scores).all():
            raise RuntimeError("non-finite scores")
    return int(feats.shape[1])


def backbone_problems(
    config: Any, load: bool = True, checks: list[BackboneCheck] | None = None
) -> list[str]:
    """Every backbone the configured metrics need: its weights are present (its describer),
    and with ``load`` it loads on the configured device and runs one tiny forward. Backbones
    run in float32 whatever the run's ``dtype`` (which applies to the base model)."""
    from t2i_bench.backbones._files import brief
    from t2i_bench.backbones._torch import release_cached_memory
    from t2i_bench.backbones.base import describe_backbone, load_backbone

    problems = []
    profile = config.backbones.profile
    for role in _roles(config):
        name, options = config.backbones.role(role)
        where = f"backbone {role} ({name}, {profile})"
        try:
            spec = describe_backbone(name, profile, **options)
        except BenchError as exc:
            problems.append(f"{where}: {exc}")
            continue
        check = BackboneCheck(role, name, spec.transient)
        if checks is not None:
            checks.append(check)
        if not load:
            continue
        backbone = None
        try:
            backbone = load_backbone(name, profile, config.device, **options)
            _smoke(backbone)  # warm-up
            start = time.perf_counter()
            check.feature_dim = _smoke(backbone)
            check.seconds_per_image = (time.perf_counter() - start) / 2
        except BenchError as exc:
            problems.append(f"{where}: {exc}")
        except Exception as exc:
            problems.append(
                f"{where} does not run on {config.device}: {brief(exc)}; check that torch "
                "works on this device (or set device: cpu) and that the weights are intact"
            )
        finally:
            del backbone
            gc.collect()
            release_cached_memory()
    return problems


@dataclass
class BaseCheck:
    png_bytes: int = 0
    seconds_per_image: float | None = None


def base_model_problems(config: Any, check: BaseCheck | None = None) -> list[str]:
    """The base model loads (through the run's own renderer and loader) on the configured
    device and dtype and renders one image at the configured size with 1 and 2 steps."""
    from t2i_bench.backbones._files import brief
    from t2i_bench.backbones._torch import release_cached_memory
    from t2i_bench.generation.worker import Renderer, RenderTask
    from t2i_bench.runner import pipeline_spec

    spec = pipeline_spec(SimpleNamespace(config=config, allow_pickle=False))
    where = f"base model {config.base_model.source!r} on {config.device}/{config.dtype}"
    renderer = Renderer(spec, config.sampler.model_copy(update={"steps": 1}))
    task = RenderTask("base", None, 1.0, None, ("doctor",), ("a photo of a cat",), (0,))
    timings = []
    try:
        for steps in (1, 1, 2):  # a warm-up, then one and two steps
            renderer.sampler = config.sampler.model_copy(update={"steps": steps})
            start = time.perf_counter()
            result = renderer.run(task)
            timings.append(time.perf_counter() - start)
            image = result.images[0] if result.images else result.load_error
            if isinstance(image, str) or image is None:
                return [
                    f"{where} renders no usable image ({image}); with dtype float16 try "
                    "float32 (or an fp16-safe VAE)"
                ]
    except BenchError as exc:
        return [f"{where}: {exc}"]
    except Exception as exc:
        return [f"{where} does not run: {brief(exc)}"]
    finally:
        del renderer
        gc.collect()
        release_cached_memory()
    if check is not None:
        step = max(timings[2] - timings[1], 0.0)
        check.png_bytes = len(image)
        check.seconds_per_image = max(timings[1] - step, 0.0) + config.sampler.steps * step
    return []


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimates(config: Any, images: int, base: BaseCheck, checks: list[BackboneCheck]) -> list[str]:
    """Rough disk and time needs from the measured forwards (batch 1, so on the high side)."""
    notes = [f"{images} images planned"]
    kept = sum(4 * c.feature_dim for c in checks if not c.transient)
    peak = sum(4 * c.feature_dim for c in checks)
    disk = images * (base.png_bytes + kept)
    notes.append(
        f"disk: about {_size(disk)} ({_size(base.png_bytes)} per PNG, {_size(kept)} of kept "
        f"embeddings per image; up to {_size(images * peak)} while scoring, before the large "
        "ones are dropped)"
    )
    embed = sum(c.seconds_per_image or 0.0 for c in checks)
    if base.seconds_per_image is not None:
        total = images * (base.seconds_per_image + embed)
        notes.append(
            f"time: roughly {_duration(total)} on {config.device} "
            f"({base.seconds_per_image:.2f} s to render and {embed:.2f} s to embed an image, "
            "measured one at a time; batches are faster)"
        )
    return notes


def planned_images(config: Any) -> int:
    """How many images the run plans (base and checkpoints, every variant), counted as the
    run's own plan-size check counts them."""
    from t2i_bench.concepts import load_concept
    from t2i_bench.prompts import load_prompt_set
    from t2i_bench.validate import planned_images as count

    concepts = [load_concept(p) for p in config.concepts]
    return count(config, concepts, load_prompt_set(config.prompts.set))


def examine(config_path: Path | None = None, load: bool = True) -> Diagnosis:
    """All problems found (the environment's, then the config's) and the estimates."""
    from t2i_bench.config import load_config

    found = Diagnosis(environment_problems())
    if config_path is None:
        return found
    config_issues = config_problems(Path(config_path))
    found.problems += config_issues
    if config_issues:
        return found
    config = load_config(Path(config_path))  # the device was checked with the config
    checks: list[BackboneCheck] = []
    found.problems += backbone_problems(config, load, checks)
    if not load:
        return found
    base = BaseCheck()
    base_issues = base_model_problems(config, base)
    found.problems += base_issues
    if not found.problems:  # estimates only from a complete set of measurements
        found.notes += estimates(config, planned_images(config), base, checks)
    return found


def diagnose(config_path: Path | None = None, load: bool = True) -> list[str]:
    """All problems found: the environment's, then the config's (when given)."""
    return examine(config_path, load).problems

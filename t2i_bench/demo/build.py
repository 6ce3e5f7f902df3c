"""Build the offline demo: a pretrained tiny base model and a grid of trained LyCORIS adapters.

``build_demo(out_dir)`` loads the committed pretrained tiny SD 1.x (``demo/base.py``; built by
``scripts/build_demo_base.py``), saves it as a diffusers folder, writes the demo concept
``olis``, trains ``lora``/``loha``/``lokr`` at a low and a high learning rate and saves each
at epochs 1-3 (18 files). Everything is seeded; the result is cached behind
``out_dir/BUILD.json`` (keyed by the builder version, the recipe and the base file's weights)
and written atomically (built in a sibling temp dir, then renamed).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2i_bench.demo.base import BASE_FILE, base_metadata
from t2i_bench.demo.concept_images import CONCEPT_NAME
from t2i_bench.errors import BenchError
from t2i_bench.hashing import tree_sha256

if TYPE_CHECKING:  # torch, PIL and LyCORIS load only when something is built
    from PIL import Image

    from t2i_bench.demo.train_adapters import AdapterSpec

BUILDER_VERSION = "3"
MARKER = "BUILD.json"
Progress = Callable[[str, float], None]  # (stage name, fraction of that stage done)


@dataclass(frozen=True)
class DemoRecipe:
    """Everything that determines the adapters' weights (part of the cache identity, with
    the base file's weights)."""

    seed: int = 0
    algos: tuple[str, ...] = ("lora", "loha", "lokr")
    # The planted truth of the quickstart (tests/test_demo_planted.py): both learning rates
    # keep training in the regime where every epoch moves the adapter further toward the
    # concept (at 6e-3 the concept peaked in epoch 1 and faded after it, as the UNet's
    # unconditional prediction drifted toward the concept too and classifier-free guidance
    # pushed away from it), so a higher learning rate and a later epoch draw the concept more
    # strongly: fidelity rises, and the alignment with prompts that ask for other colours and
    # shapes falls.
    learning_rates: tuple[float, ...] = (2e-4, 6e-4)
    epochs: int = 3
    # 10 repeats x 6 images / batch 3 = 20 steps an epoch: the adapters train in ~30 s of CPU
    repeats: int = 10
    batch_size: int = 3
    network_dim: int = 4
    network_alpha: float = 4.0
    lokr_factor: int = 4
    # One thread: results depend (slightly) on the thread count, so it is fixed; and on a
    # shared 2-core machine two threads ran 4x slower than one (OpenMP waits on a busy core).
    num_threads: int = 1

    def adapter_specs(self, preset_path: Path) -> list[AdapterSpec]:
        """The training runs, in build order."""
        from t2i_bench.demo.train_adapters import AdapterSpec

        return [
            AdapterSpec(
                algo=algo,
                learning_rate=lr,
                network_dim=self.network_dim,
                network_alpha=self.network_alpha,
                factor=self.lokr_factor if algo == "lokr" else -1,
                preset=f"presets/{preset_path.name}",
                preset_path=str(preset_path),
                epochs=self.epochs,
                repeats=self.repeats,
                batch_size=self.batch_size,
                seed=self.seed,
            )
            for algo in self.algos
            for lr in self.learning_rates
        ]

    def stages(self) -> list[str]:
        """Stage names in the order ``progress`` reports them."""
        runs = [f"train {s.output_name(CONCEPT_NAME)}" for s in self.adapter_specs(Path("p"))]
        return ["load base", *runs]


@dataclass(frozen=True)
class DemoArtifacts:
    """Where a built demo lives."""

    root: Path
    base_dir: Path  # diffusers folder: StableDiffusionPipeline.from_pretrained(base_dir)
    adapters_dir: Path  # kohya-style .safetensors, 3 algos x 2 lrs x 3 epochs
    concept_dir: Path  # reference PNGs + .txt captions
    concept_yaml: Path
    info: dict[str, Any] = field(default_factory=dict)  # the BUILD.json record

    @property
    def adapters(self) -> list[Path]:
        """The adapter files, sorted by name."""
        return sorted(self.adapters_dir.glob("*.safetensors"))


def base_model_hash(base_dir: Path) -> str:
    """The base folder's hash as t2i-bench checks ``ss_sd_model_hash`` against it."""
    return tree_sha256(Path(base_dir))


def _artifacts(root: Path, info: dict[str, Any]) -> DemoArtifacts:
    return DemoArtifacts(
        root=root,
        base_dir=root / "base",
        adapters_dir=root / "adapters",
        concept_dir=root / "concepts" / CONCEPT_NAME,
        concept_yaml=root / "concepts" / f"{CONCEPT_NAME}.yaml",
        info=info,
    )


def load_demo(
    out_dir: Path, recipe: DemoRecipe | None = None, base_file: Path = BASE_FILE
) -> DemoArtifacts | None:
    """The demo already built in ``out_dir`` by this builder version and recipe from this
    base file, else None."""
    marker = Path(out_dir) / MARKER
    try:
        info = json.loads(marker.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    recipe = recipe or DemoRecipe()
    if (
        info.get("builder_version") != BUILDER_VERSION
        or info.get("recipe") != _jsonable(recipe)
        or info.get("base_weights") != base_metadata(base_file)["state_sha256"]
    ):
        return None
    return _artifacts(Path(out_dir), info)


def build_demo(
    out_dir: Path,
    force: bool = False,
    progress: Progress | None = None,
    recipe: DemoRecipe | None = None,
    base_file: Path = BASE_FILE,
) -> DemoArtifacts:
    """Build (or return the cached) demo in ``out_dir``; see the module docstring."""
    out_dir = Path(out_dir)
    recipe = recipe or DemoRecipe()
    if not force and (cached := load_demo(out_dir, recipe, base_file)) is not None:
        return cached
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with _threads(recipe.num_threads):
            info = _build_into(tmp, recipe, base_file, progress or (lambda s, f: None))
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", "utf-8")
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _artifacts(out_dir, info)


def _build_into(
    root: Path, recipe: DemoRecipe, base_file: Path, progress: Progress
) -> dict[str, Any]:
    import torch

    from t2i_bench.demo.base import load_base
    from t2i_bench.demo.concept_images import write_concept
    from t2i_bench.demo.procedural import to_tensor
    from t2i_bench.demo.train_adapters import make_training_data, train_adapter, write_preset
    from t2i_bench.generation.pipeline import quiet_loaders
    from t2i_bench.generation.tiny import pipeline_from_components

    quiet_loaders()  # transformers' "Writing model shards" bar in save_pretrained
    timings: dict[str, float] = {}
    started, cpu_started = time.perf_counter(), time.process_time()

    @contextmanager
    def stage(name: str) -> Iterator[Callable[[float], None]]:
        t0 = time.perf_counter()
        last = [0.0]

        def report(fraction: float) -> None:
            last[0] = fraction
            progress(name, fraction)

        report(0.0)
        yield report
        if last[0] < 1.0:
            report(1.0)
        timings[name] = round(time.perf_counter() - t0, 2)

    with stage("load base"):
        components = load_base(base_file)
        base_dir = root / "base"
        pipeline_from_components(components).save_pretrained(base_dir)
        base_hash = base_model_hash(base_dir)
        concept_dir = write_concept(root / "concepts")
        preset_path = write_preset(root / "presets")
    base_meta = {
        "ss_sd_model_name": base_dir.name,
        "ss_sd_model_hash": base_hash[:8],
        "ss_new_sd_model_hash": base_hash,
    }
    concept_images, concept_captions = read_kohya_folder(concept_dir)
    data = make_training_data(components, to_tensor(concept_images), concept_captions)
    for spec in recipe.adapter_specs(preset_path):
        with stage(f"train {spec.output_name(CONCEPT_NAME)}") as step:
            train_adapter(
                components, data, spec, root / "adapters", CONCEPT_NAME, base_meta, on_step=step
            )
    return {
        "builder_version": BUILDER_VERSION,
        "recipe": _jsonable(recipe),
        "base_weights": base_metadata(base_file)["state_sha256"],
        "base_model_hash": base_hash,
        "vae_scaling_factor": components["vae"].config.scaling_factor,
        "timings_s": timings,
        "total_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(time.process_time() - cpu_started, 2),
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
    }


def read_kohya_folder(folder: Path) -> tuple[list[Image.Image], list[str]]:
    """Images in ``folder`` (sorted) and their ``.txt`` captions, as sd-scripts reads them."""
    from PIL import Image

    paths = sorted(Path(folder).glob("*.png"))
    if not paths:
        raise BenchError("no .png images", folder)
    images = [Image.open(p).convert("RGB") for p in paths]
    captions = [p.with_suffix(".txt").read_text("utf-8").strip() for p in paths]
    return images, captions


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` into place as ``target``, replacing an existing ``target``."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    try:
        new.rename(target)
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _jsonable(recipe: DemoRecipe) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(recipe)))


def _versions() -> dict[str, str]:
    import diffusers
    import lycoris
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "lycoris": getattr(lycoris, "__version__", "unknown"),
    }

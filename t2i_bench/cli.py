"""The ``t2i-bench`` command line: thin wrappers around the stages in ``runner``."""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from t2i_bench.errors import BenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
list_app = typer.Typer(no_args_is_help=True, help="List metrics, prompt sets or concepts.")
app.add_typer(list_app, name="list")
console = Console(stderr=True)
out = Console()

ConfigArg = Annotated[Path, typer.Argument(help="run config (YAML)")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="output dir (overrides the config)")
]
PickleOpt = Annotated[
    bool, typer.Option("--allow-pickle", help="allow .ckpt/.pt/.bin files (weights_only)")
]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="where generation and embedding run: local or ray")
]
RayAddressOpt = Annotated[
    str | None, typer.Option("--ray-address", help="existing Ray cluster (default: start one)")
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Ray workers (default: CPUs)")]
GpusOpt = Annotated[float, typer.Option("--gpus-per-task", help="GPUs per Ray worker")]


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by (label, done, total) callbacks."""
    tasks: dict[str, int] = {}
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield update


def _fail(exc: BenchError) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _prepare(
    config: Path,
    output: Path | None,
    allow_pickle: bool,
    executor: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    gpus_per_task: float = 0.0,
):
    from t2i_bench import runner

    if executor not in ("local", "ray"):
        raise BenchError(f"--executor must be 'local' or 'ray', not {executor!r}")
    bench = runner.prepare(config, output, allow_pickle=allow_pickle)
    for warning in bench.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if executor == "ray":
        from t2i_bench.executors import RayExecutor

        bench.executor = RayExecutor(
            runner.pipeline_spec(bench), bench.config.sampler, ray_address, workers, gpus_per_task
        )
    return bench


def _stage_generate(run) -> None:
    from t2i_bench import runner

    start = time.perf_counter()
    with progress_bar() as update:
        rendered, failed = runner.generate(run, update)
    if rendered == 0 and failed == 0:
        console.print("generate: nothing to render, every image is in the store")
    else:
        console.print(
            f"generate: rendered {rendered} images in {time.perf_counter() - start:.1f}s"
            + (f", {failed} checkpoint(s) failed to load" if failed else "")
        )


def _stage_score(run) -> None:
    from t2i_bench import runner

    start = time.perf_counter()
    with progress_bar() as update:
        embedded = runner.embed(run, update)
        summary = runner.score(run, update)
    if embedded == 0 and summary.computed == 0 and summary.failed == 0:
        console.print("score: nothing to score, every value is in the store")
    else:
        console.print(
            f"score: embedded {embedded} images, computed {summary.computed} metric groups "
            f"({summary.skipped} cached, {summary.failed} failed) "
            f"in {time.perf_counter() - start:.1f}s"
        )


def _stage_report(run) -> None:
    from t2i_bench.report.build import write_report

    paths = write_report(run)
    for path in paths:
        console.print(f"wrote {path}")


def _finish(run) -> None:
    failures = run.store.failures()
    if failures:
        console.print(f"[bold red]{len(failures)} failure(s)[/] recorded in the store:")
        for stage, item, error in failures[:20]:
            console.print(f"  {stage} {item}: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _guarded(action: Callable[[], None]) -> None:
    try:
        action()
    except BenchError as exc:
        _fail(exc)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(
            BenchError(
                f"{where}disk full ({exc.strerror}); everything written so far is kept: "
                "free space and run the same command again"
            )
        )


def _run_stages(stages: tuple[Callable, ...], *prepare_args) -> None:
    """Prepare a run, run ``stages`` on it, and always release its lock and store."""

    def action() -> None:
        bench = _prepare(*prepare_args)
        try:
            for stage in stages:
                stage(bench)
        finally:
            bench.close()

    _guarded(action)


@app.command()
def run(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_task: GpusOpt = 0.0,
) -> None:
    """Plan, generate, score and report: the whole benchmark, resumable."""
    stages = (_stage_generate, _stage_score, _stage_report, _finish)
    _run_stages(stages, config, output, allow_pickle, executor, ray_address, workers, gpus_per_task)


@app.command()
def generate(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_task: GpusOpt = 0.0,
) -> None:
    """Render every planned image the store lacks."""
    stages = (_stage_generate,)
    _run_stages(stages, config, output, allow_pickle, executor, ray_address, workers, gpus_per_task)


@app.command()
def score(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Embed images and compute every metric value the store lacks."""
    _run_stages((_stage_score,), config, output, allow_pickle, executor, ray_address, workers)


@app.command()
def report(config: ConfigArg, output: OutputOpt = None, allow_pickle: PickleOpt = False) -> None:
    """Write the leaderboard and report from what the store holds."""
    _run_stages((_stage_report,), config, output, allow_pickle)


@app.command()
def analyze(
    config: Annotated[Path | None, typer.Argument(help="run config (omit with --table)")] = None,
    output: OutputOpt = None,
    table: Annotated[
        Path | None, typer.Option(help="long metrics table (CSV/parquet) from anywhere")
    ] = None,
    configs: Annotated[Path | None, typer.Option(help="hyperparameters per checkpoint")] = None,
    out: Annotated[Path, typer.Option(help="output folder with --table")] = Path("analysis"),
    target: Annotated[
        list[str] | None, typer.Option(help="target column, e.g. clip_i.trigger (repeat)")
    ] = None,
    seed: Annotated[int, typer.Option(help="bootstrap and CatBoost seed")] = 0,
    folds: Annotated[int, typer.Option(help="grouped cross-validation folds")] = 5,
) -> None:
    """CatBoost + SHAP over hyperparameters: on a run, or on any long metrics table."""

    def from_tables() -> None:
        from t2i_bench.analysis import read_configs_table, read_metrics_table
        from t2i_bench.analysis.analyze import run_analysis
        from t2i_bench.metrics.base import available_metrics

        if table is None or configs is None:
            raise BenchError("give a run CONFIG, or both --table and --configs")
        metrics = read_metrics_table(table)
        higher = {name: cls.higher_is_better for name, cls in available_metrics().items()}
        with progress_bar() as update:
            update("analyze", 0, 1)
            result = run_analysis(
                metrics,
                read_configs_table(configs),
                out,
                higher,
                targets=target,
                seed=seed,
                cv_folds=folds,
                on_missing="drop",
            )
            update("analyze", 1, 1)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        console.print(f"wrote {out}")

    if config is None:
        _guarded(from_tables)
    else:
        _run_stages((_stage_report,), config, output, False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="where to build")] = Path(".cache/demo"),
    force: Annotated[bool, typer.Option(help="rebuild even if cached")] = False,
) -> None:
    """Build the offline demo: tiny base model and a grid of trained tiny LyCORIS adapters."""
    from t2i_bench.demo import build_demo

    start = time.perf_counter()
    with progress_bar() as update:

        def progress(stage: str, fraction: float) -> None:
            update(stage, round(fraction * 100), 100)

        artifacts = build_demo(out_dir, force=force, progress=progress)
    elapsed = time.perf_counter() - start
    state = "built" if artifacts.info.get("total_s") and elapsed > 1 else "cached"
    console.print(f"demo {state} in {artifacts.root} ({elapsed:.1f}s)")


@app.command()
def doctor(
    config: Annotated[Path | None, typer.Argument(help="run config to check (optional)")] = None,
) -> None:
    """Check this environment (and a run config) before a long run; exit 1 on any problem."""
    from t2i_bench.doctor import examine

    try:
        found = examine(config)
    except BenchError as exc:
        _fail(exc)
    problems = found.problems
    for note in found.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for problem in problems:
        console.print(f"[bold red]problem:[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print("doctor: no problems found")


@app.command()
def inspect(
    files: Annotated[list[Path], typer.Argument(help="checkpoint files or folders")],
    pattern: Annotated[
        str | None, typer.Option(help="regex with named groups read from file names")
    ] = None,
    allow_pickle: PickleOpt = False,
) -> None:
    """Show each checkpoint's format and the hyperparameters read from it, and from where."""
    from t2i_bench.checkpoints import describe_checkpoint

    def action() -> None:
        for path in files:
            info = describe_checkpoint(path, pattern, allow_pickle)
            table = Table("hyperparameter", "value", "from", title=f"{path} ({info.format})")
            for name, (value, source) in info.hyperparameters.items():
                table.add_row(name, str(value), source)
            out.print(table)
            out.print(f"  tensors: {info.tensors}  modules: {info.modules}", highlight=False)
            for warning in info.warnings:
                out.print(f"  [yellow]warning:[/] {warning}", highlight=False)

    _guarded(action)


@list_app.command("metrics")
def list_metrics() -> None:
    """Every metric plugin with its direction, backbone and prompt types."""
    from t2i_bench.metrics.base import available_metrics

    table = Table("metric", "kind", "better", "backbone", "prompt types", "version")
    for name, cls in available_metrics().items():
        better = "higher" if cls.higher_is_better else "lower"
        table.add_row(
            name, cls.kind, better, cls.backbone or "-", ", ".join(cls.prompt_types), cls.version
        )
    out.print(table)


@list_app.command("prompts")
def list_prompts(
    folder: Annotated[Path, typer.Argument(help="prompt-set folder")] = Path("prompts"),
) -> None:
    """The prompt sets in a folder with their versions and sizes."""
    from t2i_bench.prompt_types import PROMPT_SET_TYPES
    from t2i_bench.prompts import load_prompt_set

    def action() -> None:
        table = Table("file", "name", "version", *PROMPT_SET_TYPES)
        for path in sorted(folder.glob("*.yaml")):
            ps = load_prompt_set(path)
            sizes = [str(len(ps.templates_for(k))) for k in PROMPT_SET_TYPES]
            table.add_row(path.name, ps.name, str(ps.version), *sizes)
        out.print(table)

    _guarded(action)


@list_app.command("concepts")
def list_concepts(
    folder: Annotated[Path, typer.Argument(help="concept folder")] = Path("concepts"),
) -> None:
    """The concepts in a folder with their descriptors and reference image counts."""
    from t2i_bench.concepts import find_concepts, load_concept

    def action() -> None:
        table = Table("file", "name", "descriptor", "category", "images")
        for path in find_concepts(folder):
            c = load_concept(path)
            table.add_row(path.name, c.name, c.descriptor, c.category, str(len(c.image_paths)))
        out.print(table)

    _guarded(action)


def main() -> None:  # pragma: no cover - console entry for `python -m t2i_bench`
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
    sys.exit(0)

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
from t2i_bench.runlog import LOG_NAME

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
list_app = typer.Typer(
    no_args_is_help=True,
    help="List metrics, backbones, prompt types, prompt sets or concepts.",
)
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
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="also show library warnings and logs (always in the run's run.log)"
    ),
]


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
            f"in {time.perf_counter() - start:.1f}s",
            soft_wrap=True,
        )


def _stage_report(run) -> None:
    from rich.markup import escape

    from t2i_bench.analysis.choice import read_choice_lines
    from t2i_bench.report.build import write_report

    root = run.config.output_dir
    paths = write_report(run)
    names = ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths)
    console.print(
        f"report: wrote {names} in {root} (library warnings and logs: {LOG_NAME})",
        highlight=False,
        soft_wrap=True,
    )
    for line in read_choice_lines(root / "analysis"):
        console.print(escape(line), highlight=False, soft_wrap=True)


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


def _run_stages(stages: tuple[Callable, ...], *prepare_args, verbose: bool = False) -> None:
    """Prepare a run, run ``stages`` on it, and always release its lock and store; library
    warnings and logs go to the run's ``run.log`` (and the console with ``verbose``)."""
    from t2i_bench.runlog import RunLog

    def action() -> None:
        with RunLog(verbose=verbose, console=console) as log:
            bench = _prepare(*prepare_args)
            log.to_file(bench.config.output_dir / LOG_NAME)
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
    verbose: VerboseOpt = False,
) -> None:
    """Plan, generate, score and report: the whole benchmark, resumable."""
    stages = (_stage_generate, _stage_score, _stage_report, _finish)
    args = (config, output, allow_pickle, executor, ray_address, workers, gpus_per_task)
    _run_stages(stages, *args, verbose=verbose)


@app.command()
def generate(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_task: GpusOpt = 0.0,
    verbose: VerboseOpt = False,
) -> None:
    """Render every planned image the store lacks."""
    args = (config, output, allow_pickle, executor, ray_address, workers, gpus_per_task)
    _run_stages((_stage_generate,), *args, verbose=verbose)


@app.command()
def score(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Embed images and compute every metric value the store lacks."""
    args = (config, output, allow_pickle, executor, ray_address, workers)
    _run_stages((_stage_score,), *args, verbose=verbose)


@app.command()
def report(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Write the leaderboard and report from what the store holds."""
    _run_stages((_stage_report,), config, output, allow_pickle, verbose=verbose)


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
    by: Annotated[
        list[str] | None,
        typer.Option(help="also analyse each value of this column, e.g. category (repeat)"),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(help='analyse only checkpoints matching, e.g. "not (alpha == 1)"'),
    ] = None,
    feature: Annotated[
        list[str] | None, typer.Option(help="hyperparameter to use as a feature (repeat)")
    ] = None,
    categorical: Annotated[
        list[str] | None, typer.Option(help="feature to treat as categorical (repeat)")
    ] = None,
    normalise: Annotated[
        str | None, typer.Option(help="targets: raw means or rank scores (raw|rank)")
    ] = None,
    fold_confounded: Annotated[
        bool | None,
        typer.Option(
            "--fold-confounded/--no-fold-confounded", help="fold confounded features (default)"
        ),
    ] = None,
    on_missing: Annotated[
        str,
        typer.Option(help="with --table: checkpoints missing from --configs: error|drop"),
    ] = "error",
) -> None:
    """CatBoost + SHAP over hyperparameters: on a run, or on any long metrics table.

    Options given here override the run config's ``analysis:`` section.
    """
    from t2i_bench.config import AnalysisConfig

    given = {
        "by": by or None,
        "where": where,
        "features": feature or None,
        "categorical": categorical or None,
        "targets": target or None,
        "normalise": normalise,
        "fold_confounded": fold_confounded,
    }
    overrides = {k: v for k, v in given.items() if v is not None}

    def settings(base: AnalysisConfig) -> AnalysisConfig:
        from pydantic import ValidationError

        from t2i_bench.config import _first_error

        try:
            return AnalysisConfig.model_validate({**base.model_dump(), **overrides})
        except ValidationError as exc:
            message = _first_error(exc).replace("Value error, ", "")
            raise BenchError(f"analysis option {message}") from None

    def from_tables() -> None:
        from rich.markup import escape

        from t2i_bench.analysis import read_configs_table, read_metrics_table
        from t2i_bench.analysis.analyze import check_options, run_analysis
        from t2i_bench.metrics.base import available_metrics

        if table is None or configs is None:
            raise BenchError("give a run CONFIG, or both --table and --configs")
        if on_missing not in ("error", "drop"):
            raise BenchError(f"--on-missing must be 'error' or 'drop', not {on_missing!r}")
        options = settings(AnalysisConfig())
        metrics = read_metrics_table(table)
        config_table = read_configs_table(configs)
        higher = {name: cls.higher_is_better for name, cls in available_metrics().items()}
        check = options.model_dump(include={"by", "where", "normalise"})
        check_options(config_table, **check)  # before any work
        with progress_bar() as update:
            update("analyze", 0, 1)
            result = run_analysis(
                metrics,
                config_table,
                out,
                higher,
                seed=seed,
                cv_folds=folds,
                on_missing=on_missing,
                **options.model_dump(),
            )
            update("analyze", 1, 1)
        for warning in result.warnings:  # escaped: group labels look like markup
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        console.print(f"wrote {out}")

    def with_settings(bench) -> None:
        bench.config.analysis = settings(bench.config.analysis)
        _stage_report(bench)

    if config is None:
        _guarded(from_tables)
    else:
        _guarded(lambda: settings(AnalysisConfig()))  # bad options fail before the run loads
        _run_stages((with_settings,), config, output, False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="where to build")] = Path(".cache/demo"),
    force: Annotated[bool, typer.Option(help="rebuild even if cached")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build the offline demo: tiny base model and a grid of trained tiny LyCORIS adapters
    (library logs go to OUT.log, e.g. .cache/demo.log)."""
    from t2i_bench.runlog import RunLog

    def action() -> None:
        from t2i_bench.demo.build import load_demo

        start = time.perf_counter()
        if not force and (cached := load_demo(out_dir)) is not None:
            console.print(f"demo cached in {cached.root} (built in {cached.info['total_s']}s)")
            return
        log_file = out_dir.with_name(f"{out_dir.name}.log")
        with RunLog(log_file, verbose=verbose, console=console), progress_bar() as update:
            from t2i_bench.demo import build_demo

            def progress(stage: str, fraction: float) -> None:
                update(stage, round(fraction * 100), 100)

            artifacts = build_demo(out_dir, force=force, progress=progress)
        elapsed = time.perf_counter() - start
        console.print(f"demo built in {artifacts.root} ({elapsed:.1f}s; library logs: {log_file})")

    _guarded(action)


@app.command()
def doctor(
    config: Annotated[Path | None, typer.Argument(help="run config to check (optional)")] = None,
) -> None:
    """Check this environment (and a run config) before a long run; exit 1 on any problem."""
    from t2i_bench.doctor import diagnose

    problems = diagnose(config)
    for problem in problems:
        console.print(f"[bold red]problem:[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print("doctor: no problems found")


@app.command()
def plan(config: ConfigArg) -> None:
    """Image count, disk and a rough rendering time for a config; loads no model."""
    from t2i_bench.config import load_config
    from t2i_bench.estimate import describe, estimate

    def action() -> None:
        est = estimate(config)
        for line in describe(est, load_config(config)):
            out.print(line, highlight=False, soft_wrap=True)
        for note in est.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)

    _guarded(action)


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
    """Every metric plugin: direction, axis, backbone roles, prompt types, description."""
    from t2i_bench.metrics.base import available_metrics

    def action() -> None:
        table = Table("metric", "better", "axis", "kind", "backbone", "prompt types", "description")
        for name, cls in available_metrics().items():
            metric = cls()
            better = "higher" if cls.higher_is_better else "lower"
            roles = ", ".join(metric.roles) or "-"
            types = ", ".join(cls.prompt_types)
            table.add_row(name, better, cls.axis, cls.kind, roles, types, cls.description)
        out.print(table)

    _guarded(action)


@list_app.command("backbones")
def list_backbones(
    profile: Annotated[str, typer.Option(help="tiny or real (real: weights must be present)")] = (
        "tiny"
    ),
) -> None:
    """Every registered backbone: architecture, preprocessing, weights."""
    from t2i_bench.backbones.base import available_backbones, describe_backbone

    def action() -> None:
        table = Table("backbone", "architecture", "preprocessing", "weights")
        for name in available_backbones():
            try:
                spec = describe_backbone(name, profile)
            except BenchError as exc:
                table.add_row(name, "-", "-", f"unavailable: {exc}")
                continue
            table.add_row(name, spec.architecture, spec.preprocessing, spec.weights)
        out.print(table)

    _guarded(action)


@list_app.command("prompt-types")
def list_prompt_types() -> None:
    """Every prompt type: where its prompts come from, the axes it serves, description."""
    from t2i_bench.prompt_types import PROMPT_TYPES

    table = Table("prompt type", "source", "mentions concept", "axes", "description")
    for spec in PROMPT_TYPES.values():
        mentions = "yes" if spec.mentions_concept else "no"
        table.add_row(spec.name, spec.source, mentions, ", ".join(spec.axes), spec.description)
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

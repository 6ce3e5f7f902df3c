"""The ``t2i-bench`` command line: thin wrappers around the stages in ``runner``.

Exit codes: 0 done; 1 failures recorded in the store; 2 bad input or environment; 3 internal
error (rerun with --debug); 130 interrupted. Every error is one line (t2i_bench/boundary.py).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from t2i_bench.boundary import describe
from t2i_bench.errors import BenchError
from t2i_bench.runlog import LOG_NAME

console = Console(stderr=True)
out = Console()


class _State:
    """Set by the global options and the stages; read by the error boundary."""

    debug = False
    database: Callable[[], Path | None] | None = None


def _cli_exceptions() -> tuple[type[BaseException], ...]:
    """Exceptions that end a command on purpose (exit codes, usage errors): not errors to
    describe. Typer may vendor click, so both click's and typer's own are listed."""
    found: list[type[BaseException]] = [typer.Exit, typer.Abort]
    found += [click.exceptions.Exit, click.ClickException, click.exceptions.Abort]
    try:
        from typer._click import exceptions as vendored

        found += [vendored.ClickException]
    except ImportError:  # typer releases that use click itself
        pass
    return tuple(found)


class _Boundary(TyperGroup):
    """The one error boundary: any exception from a command becomes one line and an exit
    code (t2i_bench/boundary.py); ``--debug`` prints the traceback first."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _cli_exceptions():
            raise
        except (Exception, KeyboardInterrupt) as exc:
            outcome = describe(exc, _State.database)
            if _State.debug:
                traceback.print_exc(file=sys.stderr)
            _error(outcome.message)
            raise typer.Exit(outcome.code) from None


app = typer.Typer(cls=_Boundary, add_completion=False, no_args_is_help=True, help=__doc__)
list_app = typer.Typer(
    no_args_is_help=True,
    help="List metrics, backbones, prompt types, prompt sets or concepts.",
)
app.add_typer(list_app, name="list")


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback of an error", envvar="T2I_DEBUG")
    ] = False,
) -> None:
    _State.debug = debug
    _State.database = None


def _line(text: object) -> str:
    """User text for rich: markup escaped (a trigger like [V] stays text), one line."""
    return escape(str(text).replace("\r", " ").replace("\n", " "))


def _error(message: str) -> None:
    console.print(f"[bold red]error:[/] {_line(message)}", highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {_line(message)}", highlight=False, soft_wrap=True)


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
MaxImagesOpt = Annotated[
    int | None,
    typer.Option("--max-images", help="allow plans this large (overrides max_images)"),
]
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


def _prepare(
    config: Path,
    output: Path | None,
    allow_pickle: bool,
    executor: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    gpus_per_task: float = 0.0,
    max_images: int | None = None,
    **replan,
):
    from t2i_bench import runner

    if executor not in ("local", "ray"):
        raise BenchError(f"--executor must be 'local' or 'ray', not {executor!r}")
    if max_images is not None and max_images < 1:
        raise BenchError(f"--max-images must be at least 1, not {max_images}")
    _State.database = lambda: _database(config, output)
    bench = runner.prepare(
        config, output, allow_pickle=allow_pickle, max_images=max_images, **replan
    )
    _State.database = lambda: bench.store.db_path
    shown = set(replan["reuse"].warnings) if replan.get("reuse") else set()
    for warning in bench.warnings:
        if warning not in shown:
            _warn(warning)
    if executor == "ray" and not replan.get("reuse"):
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

    unusable = run.store.unusable_images()
    if unusable:
        rows = run.store.image_rows()
        _warn(
            f"{run.store.root / 'images'}: {len(unusable)} of {len(rows)} images are missing or "
            f"altered (e.g. {rows[unusable[0]][0]}); the report leaves them out and keeps "
            "their metric values; `t2i-bench run` restores them"
        )
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
            console.print(
                f"  {_line(stage)} {_line(item)}: {_line(error)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(1)


def _database(config: Path, output: Path | None) -> Path | None:
    """The run's ``run.sqlite``, for a message about it."""
    from t2i_bench.config import load_config

    return (output or load_config(config, here=False).output_dir) / "run.sqlite"


def _run_stages(
    stages: tuple[Callable, ...],
    *prepare_args,
    verbose: bool = False,
    max_images: int | None = None,
) -> None:
    """Prepare a run, run ``stages`` on it, and always release its lock and store; library
    warnings and logs go to the run's ``run.log`` (and the console with ``verbose``)."""
    from t2i_bench.runlog import RunLog

    with RunLog(verbose=verbose, console=console) as log:
        bench = _prepare(*prepare_args, max_images=max_images)
        log.to_file(bench.config.output_dir / LOG_NAME)
        try:
            for stage in stages:
                stage(bench)
        finally:
            bench.close()


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
    max_images: MaxImagesOpt = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="keep running: evaluate each checkpoint the globs match as soon as it is "
            "completely written (Ctrl-C to stop)",
        ),
    ] = False,
    until: Annotated[
        int | None,
        typer.Option(help="with --watch: stop once this many watched checkpoints are evaluated"),
    ] = None,
    poll: Annotated[
        float, typer.Option(help="with --watch: seconds between looks (and a file's settle time)")
    ] = 2.0,
) -> None:
    """Plan, generate, score and report: the whole benchmark, resumable."""
    stages = (_stage_generate, _stage_score, _stage_report, _finish)
    args = (config, output, allow_pickle, executor, ray_address, workers, gpus_per_task)
    if watch:
        _watch(stages[:-1], args, until, poll, verbose, max_images)
        return
    if until is not None:
        raise BenchError("--until needs --watch")
    _run_stages(stages, *args, verbose=verbose, max_images=max_images)


def _watch(
    stages: tuple[Callable, ...],
    args: tuple,
    until: int | None,
    poll: float,
    verbose: bool,
    max_images: int | None = None,
) -> None:
    """``run --watch``: the stages again each time watched checkpoints are complete, on one
    open run (store, lock, executor, loaded models); the best checkpoint per axis after each."""
    import functools

    import pandas as pd

    from t2i_bench import watch
    from t2i_bench.config import load_config
    from t2i_bench.runlog import RunLog

    if until is not None and until < 1:
        raise BenchError("--until must be at least 1")
    if poll <= 0:
        raise BenchError("--poll must be positive")
    globs = watch.watched_globs(load_config(args[0], args[1]))
    current: list = []

    def evaluate(complete: list[Path]) -> None:
        adjust = functools.partial(watch.only_complete, complete=complete)
        reuse = current[-1] if current else None
        bench = _prepare(*args, max_images=max_images, adjust=adjust, reuse=reuse)
        if not current:
            log.to_file(bench.config.output_dir / LOG_NAME)
            say(f"watch: watching {', '.join(globs)} (Ctrl-C to stop)")
        current[:] = [bench]
        for stage in stages:
            stage(bench)
        board = pd.read_csv(bench.config.output_dir / "leaderboard.csv")
        say(watch.best_line(board, bench.metrics))

    def say(line: str) -> None:
        console.print(_line(line), highlight=False, soft_wrap=True)

    with RunLog(verbose=verbose, console=console) as log:
        try:
            watch.watch(globs, evaluate, until=until, poll=poll, allow_pickle=args[2], say=say)
            if current:
                _finish(current[-1])  # exit 1 when failures are recorded
        finally:
            if current:
                current[-1].close()


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
    max_images: MaxImagesOpt = None,
) -> None:
    """Render every planned image the store lacks."""
    args = (config, output, allow_pickle, executor, ray_address, workers, gpus_per_task)
    _run_stages((_stage_generate,), *args, verbose=verbose, max_images=max_images)


@app.command()
def score(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    verbose: VerboseOpt = False,
    max_images: MaxImagesOpt = None,
) -> None:
    """Embed images and compute every metric value the store lacks."""
    args = (config, output, allow_pickle, executor, ray_address, workers)
    _run_stages((_stage_score,), *args, verbose=verbose, max_images=max_images)


@app.command()
def report(
    config: ConfigArg,
    output: OutputOpt = None,
    allow_pickle: PickleOpt = False,
    verbose: VerboseOpt = False,
    max_images: MaxImagesOpt = None,
) -> None:
    """Write the leaderboard and report from what the store holds."""
    _run_stages(
        (_stage_report,), config, output, allow_pickle, verbose=verbose, max_images=max_images
    )


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
        from t2i_bench.analysis import read_configs_table, read_metrics_table
        from t2i_bench.analysis.analyze import check_options, run_analysis
        from t2i_bench.metrics.base import available_metrics

        if table is None or configs is None:
            raise BenchError("give a run CONFIG, or both --table and --configs")
        if folds < 2:
            raise BenchError(f"--folds must be at least 2 (grouped cross-validation), not {folds}")
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
            try:
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
            except Exception as exc:  # the analysis refusing these tables, e.g. too few rows
                catboost = sys.modules.get("catboost")
                if not isinstance(exc, ValueError) and not (
                    catboost is not None and isinstance(exc, catboost.CatBoostError)
                ):
                    raise
                raise BenchError(f"cannot analyse with --configs {configs}: {exc}", table) from None
            update("analyze", 1, 1)
        for warning in result.warnings:
            _warn(warning)
        console.print(f"wrote {_line(out)}", highlight=False)

    def with_settings(bench) -> None:
        bench.config.analysis = settings(bench.config.analysis)
        _stage_report(bench)

    if config is None:
        from_tables()
    else:
        settings(AnalysisConfig())  # bad options fail before the run loads
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

    action()


@app.command()
def doctor(
    config: Annotated[Path | None, typer.Argument(help="run config to check (optional)")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Check this environment (and a run config) before a long run; exit 1 on any problem.
    Library warnings met while loading are not shown (``--verbose`` shows them)."""
    from t2i_bench.doctor import examine
    from t2i_bench.runlog import RunLog

    with RunLog(verbose=verbose, console=console):
        found = examine(config)
    problems = found.problems
    for note in found.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for problem in problems:
        console.print(f"[bold red]problem:[/] {_line(problem)}", highlight=False, soft_wrap=True)
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
        for line in describe(est, load_config(config, here=False)):
            out.print(line, highlight=False, soft_wrap=True)
        for note in est.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)

    action()


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
            table = Table("hyperparameter", "value", "from", title=_line(f"{path} ({info.format})"))
            for name, (value, source) in info.hyperparameters.items():
                table.add_row(_line(name), _line(value), source)
            out.print(table)
            out.print(f"  tensors: {info.tensors}  modules: {_line(info.modules)}", highlight=False)
            for warning in info.warnings:
                out.print(f"  [yellow]warning:[/] {_line(warning)}", highlight=False)

    action()


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

    action()


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

    action()


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
            table.add_row(_line(path.name), _line(ps.name), str(ps.version), *sizes)
        out.print(table)

    action()


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
            row = (path.name, c.name, c.descriptor, c.category, str(len(c.image_paths)))
            table.add_row(*map(_line, row))
        out.print(table)

    action()


def main() -> None:  # pragma: no cover - console entry for `python -m t2i_bench`
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
    sys.exit(0)

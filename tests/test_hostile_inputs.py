"""Hostile inputs and faults, tried on a completed run: each case must exit with its
documented code, print exactly one line naming the file (or option) at fault, show no
traceback, and leave every image, embedding, score and the leaderboard as they were.

Each case backs a row of docs/reliability.md. The cases that used to hang (a FIFO, a device
file, an alias bomb, a billion images per prompt) run in a subprocess under a timeout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from adapter_files import write_lycoris_file
from conftest import REPO
from PIL import Image
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline

CONFIG = """\
name: hostile
output_dir: out
base_model: {source: tiny}
sampler: {steps: 3, guidance_scale: 3.0, width: 64, height: 64, batch_size: 4}
concepts: [zyx.yaml]
prompts: {set: prompts.yaml, max_per_type: 1}
images_per_prompt: 2
metrics: [clip_i, clip_t]
checkpoints: [{path: a.safetensors}]
"""
CONCEPT = "name: zyx\ntrigger: zyx\nclass_word: toy\ncategory: object\nimages: zyx\n"


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> Path:
    """A folder with a concept, an adapter, a config and a completed run in ``out/``."""
    root = tmp_path_factory.mktemp("completed")
    images = root / "zyx"
    images.mkdir()
    for i in range(3):
        array = np.zeros((64, 64, 3), np.uint8)
        array[16:48, 16:48, i] = 220
        Image.fromarray(array).save(images / f"img_{i}.png")
        (images / f"img_{i}.txt").write_text(f"a photo of zyx toy, view {i}")
    (root / "zyx.yaml").write_text(CONCEPT)
    shutil.copy(REPO / "prompts" / "default.yaml", root / "prompts.yaml")
    write_lycoris_file(load_base_pipeline("tiny", 0), root / "a.safetensors", seed=3)
    (root / "cfg.yaml").write_text(CONFIG)
    result = CliRunner().invoke(app, ["run", str(root / "cfg.yaml")])
    assert result.exit_code == 0, result.output
    return root


@dataclass
class Work:
    """A copy of the completed run to break."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "cfg.yaml"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def run(self, *extra: str, command: str = "run") -> list[str]:
        return [command, str(self.config), *extra]

    def set(self, key: str, value: str, file: str = "cfg.yaml") -> Path:
        """Set a top-level key of a YAML file (replacing it and its block, or appending)."""
        path = self.root / file
        lines, skipping = [], False
        for line in path.read_text().splitlines():
            if line.startswith(f"{key}:"):
                skipping = True
            elif not (skipping and line[:1] in (" ", "-")):
                skipping = False
                lines.append(line)
        path.write_text("\n".join([*lines, f"{key}: {value}"]) + "\n")
        return path

    def snapshot(self) -> dict:
        """What a failed command must not change: stored rows, values, PNGs, leaderboard."""
        state: dict = {
            "pngs": sorted(
                (p.relative_to(self.out).as_posix(), p.stat().st_size)
                for p in (self.out / "images").rglob("*.png")
            ),
            "leaderboard": (self.out / "leaderboard.csv").read_bytes(),
        }
        db = self.out / "run.sqlite"
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            for table in ("images", "embeddings", "scores"):
                state[table] = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            state["values"] = conn.execute(
                "SELECT metric, checkpoint, concept, prompt_type, item, value FROM scores "
                "ORDER BY metric, checkpoint, concept, prompt_type, item"
            ).fetchall()
            conn.close()
        except sqlite3.Error:
            state["database"] = hashlib.sha256(db.read_bytes()).hexdigest() if db.is_file() else 0
        return state


@pytest.fixture()
def work(completed: Path, tmp_path: Path) -> Work:
    root = tmp_path / "w"
    shutil.copytree(completed, root)
    return Work(root)


Case = Callable[[Work], tuple[list[str], object]]
CASES: dict[str, tuple[Case, str, int, bool]] = {}


def case(fragment: str, code: int = 2, stage: bool = False):
    """Register a case: it breaks ``Work`` and returns (argv, what the line must name).
    ``stage``: the fault stops a stage, whose progress bar line comes before the error."""

    def register(fn: Case) -> Case:
        CASES[fn.__name__] = (fn, fragment, code, stage)
        return fn

    return register


# -- the run config --------------------------------------------------------------------------
@case("line 2: expected ',' or ']'")
def config_malformed(w: Work):
    w.config.write_text("name: [unclosed\n")
    return w.run(), w.config


@case("line 11: duplicate key 'seed'")
def config_duplicate_key(w: Work):
    w.config.write_text(CONFIG + "seed: 1\nseed: 2\n")
    return w.run(), w.config


@case("line 1: recursive alias")
def config_recursive_alias(w: Work):
    w.config.write_text("a: &a [1, *a]\n")
    return w.run(), w.config


@case("YAML nested too deeply")
def config_nested_too_deeply(w: Work):
    w.config.write_text("x: " + "[" * 20000 + "]" * 20000 + "\n")
    return w.run(), w.config


@case("over the limit of 10,485,760 bytes")
def config_oversized(w: Work):
    w.config.write_text(CONFIG + "# " + "x" * (11 * 1024 * 1024) + "\n")
    return w.run(), w.config


@case("config file is not UTF-8 text (byte 0xe9 on line 1)")
def config_latin1(w: Work):
    w.config.write_bytes(b"name: caf\xe9\n" + CONFIG.encode().split(b"\n", 1)[1])
    return w.run(), w.config


@case("a folder, not a config file")
def config_is_a_folder(w: Work):
    folder = w.root / "folder.yaml"
    folder.mkdir()
    return ["run", str(folder)], folder


@case("config file not found")
def config_missing(w: Work):
    return ["run", str(w.root / "nope.yaml")], w.root / "nope.yaml"


@case("a config must be a YAML mapping")
def config_not_a_mapping(w: Work):
    w.config.write_text("- just\n- a list\n")
    return w.run(), w.config


@case("colour: unknown field")
def config_unknown_field(w: Work):
    w.set("colour", "red")
    return w.run(), w.config


@case("sampler.steps: Input should be a valid integer")
def config_wrong_type(w: Work):
    w.set("sampler", "{steps: many}")
    return w.run(), w.config


@case("sampler.width: Value error, 60 is not a multiple of 8")
def width_not_multiple_of_8(w: Work):
    w.set("sampler", "{steps: 3, width: 60, height: 64}")
    return w.run(), w.config


@case("sampler.height: Input should be less than or equal to 8192")
def height_too_large(w: Work):
    w.set("sampler", "{steps: 3, width: 64, height: 100000}")
    return w.run(), w.config


@case("sampler.guidance_scale: Input should be a finite number")
def guidance_nan(w: Work):
    w.set("sampler", "{steps: 3, width: 64, height: 64, guidance_scale: .nan}")
    return w.run(), w.config


@case("device: 'cuda:99' requested but this machine has")
def device_cuda_absent(w: Work):
    w.set("device", "'cuda:99'")
    return w.run(), w.config


@case("device: 'mps' requested but this machine has no mps device")
def device_mps_absent(w: Work):
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    w.set("device", "mps")
    return w.run(), w.config


@case("device: 'quantum:0' is not a torch device")
def device_invalid(w: Work):
    w.set("device", "'quantum:0'")
    return w.run(), w.config


@case("filename_pattern: Value error, not a valid regular expression")
def pattern_invalid_regex(w: Work):
    w.set("filename_pattern", "'(?P<lr>['")
    return w.run(), w.config


@case("group 'checkpoint': hyperparameter name 'checkpoint' is a column")
def pattern_group_reserved(w: Work):
    w.set("filename_pattern", "'(?P<checkpoint>.*)'")
    return w.run(), w.config


@case("hyperparameter name 'rank_score' is a column t2i-bench writes itself")
def hyperparameter_reserved(w: Work):
    w.set("checkpoints", "[{path: a.safetensors, hyperparameters: {rank_score: 1}}]")
    return w.run(), w.config


@case("hyperparameter name 'clip_i.trigger' contains '.'")
def hyperparameter_metric_column(w: Work):
    w.set("checkpoints", "[{path: a.safetensors, hyperparameters: {clip_i.trigger: 1}}]")
    return w.run(), w.config


@case("hyperparameter name '=cmd' starts with '='")
def hyperparameter_formula(w: Work):
    w.set("checkpoints", "[{path: a.safetensors, hyperparameters: {'=cmd': 1}}]")
    return w.run(), w.config


@case("lr: inf is not a finite number")
def hyperparameter_infinite(w: Work):
    w.set("checkpoints", "[{path: a.safetensors, hyperparameters: {lr: .inf}}]")
    return w.run(), w.config


@case("images_per_prompt: 1,000,000,000 alone is over max_images 200,000")
def billion_images_per_prompt(w: Work):
    w.set("images_per_prompt", "1000000000")
    return w.run(), w.config


@case("the plan has 20 images, over max_images 5")
def plan_over_max_images(w: Work):
    w.set("max_images", "5")
    return w.run(), w.config


@case("the plan has 20 images, over max_images 7")
def plan_over_max_images_flag(w: Work):
    return w.run("--max-images", "7"), w.config


@case("metrics: Value error, listed twice: clip_i")
def metric_listed_twice(w: Work):
    w.set("metrics", "[clip_i, clip_t, clip_i]")
    return w.run(), w.config


@case("prompts.types: Value error, listed twice: trigger")
def prompt_type_listed_twice(w: Work):
    w.set("prompts", "{set: prompts.yaml, types: [trigger, trigger]}")
    return w.run(), w.config


@case("metrics: unknown metric 'cilp_t'; did you mean clip_t")
def unknown_metric(w: Work):
    w.set("metrics", "[clip_i, cilp_t]")
    return w.run(), w.config


@case("exists and is not a folder")
def output_dir_is_a_file(w: Work):
    (w.root / "taken").write_text("a file")
    w.set("output_dir", "taken")
    return w.run(), w.config


@case("is not a folder")
def output_dir_under_a_file(w: Work):
    (w.root / "taken").write_text("a file")
    w.set("output_dir", "taken/out")
    return w.run(), w.config


@case("base_model.name: Value error, the base model's row is called 'base'")
def base_model_renamed(w: Work):
    w.set("base_model", "{source: tiny, name: sd15}")
    return w.run(), w.config


@case("checkpoint name 'base' is the base model's row")
def adapter_named_base(w: Work):
    w.set("checkpoints", "[{path: a.safetensors, name: base}]")
    return w.run(), w.root / "a.safetensors"


@case("duplicate checkpoint name 'a'")
def adapter_named_twice(w: Work):
    shutil.copy(w.root / "a.safetensors", w.root / "b.safetensors")
    w.set("checkpoints", "[{path: a.safetensors}, {path: b.safetensors, name: a}]")
    return w.run(), w.root / "b.safetensors"


@case("checkpoint file not found")
def checkpoint_missing(w: Work):
    w.set("checkpoints", "[{path: gone.safetensors}]")
    return w.run(), w.root / "gone.safetensors"


@case("checkpoints: glob matched no files")
def checkpoint_glob_empty(w: Work):
    w.set("checkpoints", "[{glob: 'nothing/*.safetensors'}]")
    return w.run(), "nothing/*.safetensors"


@case("seed + images_per_prompt - 1 = 9223372036854775808 is over 2**63 - 1")
def seed_overflow(w: Work):
    w.set("seed", str(2**63 - 1))
    return w.run(), w.config


# -- concepts --------------------------------------------------------------------------------
@case("concept file is not UTF-8 text (byte 0xe9 on line 2)")
def concept_latin1(w: Work):
    (w.root / "zyx.yaml").write_bytes(CONCEPT.encode().replace(b"zyx\nclass", b"z\xe9\nclass"))
    return w.run(), w.root / "zyx.yaml"


@case("trigger: Value error, trigger must not be empty")
def concept_blank_trigger(w: Work):
    w.set("trigger", "'  '", file="zyx.yaml")
    return w.run(), w.root / "zyx.yaml"


@case("name: String should match pattern")
def concept_name_traversal(w: Work):
    w.set("name", "../evil", file="zyx.yaml")
    return w.run(), w.root / "zyx.yaml"


@case("duplicate key 'trigger'")
def concept_duplicate_key(w: Work):
    (w.root / "zyx.yaml").write_text(CONCEPT + "trigger: other\n")
    return w.run(), w.root / "zyx.yaml"


@case("a folder, not a concept file")
def concept_is_a_folder(w: Work):
    (w.root / "zyx.yaml").unlink()
    (w.root / "zyx.yaml").mkdir()
    return w.run(), w.root / "zyx.yaml"


@case("concepts: duplicate concept names")
def concept_listed_twice(w: Work):
    shutil.copy(w.root / "zyx.yaml", w.root / "again.yaml")
    w.set("concepts", "[zyx.yaml, again.yaml]")
    return w.run(), w.config


@case("unreadable reference image (")
def reference_truncated(w: Work):
    image = w.root / "zyx" / "img_1.png"
    image.write_bytes(image.read_bytes()[:60])
    return w.run(), image


@case("reference image is 12000x10000 = 120,000,000 pixels, over the limit of")
def reference_decompression_bomb(w: Work):
    image = w.root / "zyx" / "img_1.png"
    big = Image.new("1", (12000, 10000))  # compresses to a few kB, decodes to 120 MP
    big.save(image)
    return w.run(), image


@case("a folder, not a reference image file")
def reference_is_a_folder(w: Work):
    (w.root / "zyx" / "img_9.png").mkdir()
    return w.run(), w.root / "zyx" / "img_9.png"


@case("images: no reference images in")
def reference_folder_empty(w: Work):
    for path in (w.root / "zyx").iterdir():
        path.unlink()
    return w.run(), w.root / "zyx.yaml"


@case("images: reference image folder not found")
def reference_folder_missing(w: Work):
    shutil.rmtree(w.root / "zyx")
    return w.run(), w.root / "zyx.yaml"


@case("caption file is not UTF-8 text (byte 0xe9 on line 1)")
def caption_latin1(w: Work):
    caption = w.root / "zyx" / "img_0.txt"
    caption.write_bytes(b"a photo of zyx toy, caf\xe9")
    return w.run(), caption


@case("caption file is 70,000 bytes, over the limit of 65,536 bytes")
def caption_oversized(w: Work):
    caption = w.root / "zyx" / "img_0.txt"
    caption.write_text("x" * 70000)
    return w.run(), caption


@case("a folder, not a caption file")
def caption_is_a_folder(w: Work):
    caption = w.root / "zyx" / "img_0.txt"
    caption.unlink()
    caption.mkdir()
    return w.run(), caption


# -- prompt sets -----------------------------------------------------------------------------
@case("trigger: template has no '{}'")
def prompt_template_without_slot(w: Work):
    w.set("trigger", "['a photo']", file="prompts.yaml")
    return w.run(), w.root / "prompts.yaml"


@case("prompts.types asks for 'style' but the prompt set has no style prompts")
def prompt_type_without_prompts(w: Work):
    w.set("style", "[]", file="prompts.yaml")
    return w.run(), w.root / "prompts.yaml"


@case("prompt set file is not UTF-8 text")
def prompt_set_latin1(w: Work):
    path = w.root / "prompts.yaml"
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    return w.run(), path


@case("a folder, not a prompt set file")
def prompt_set_is_a_folder(w: Work):
    (w.root / "prompts.yaml").unlink()
    (w.root / "prompts.yaml").mkdir()
    return w.run(), w.root / "prompts.yaml"


# -- the run folder and the machine ----------------------------------------------------------
@case("not a readable t2i-bench store (file is not a database)")
def database_corrupt(w: Work):
    (w.out / "run.sqlite").write_bytes(b"garbage" * 100)
    for extra in ("run.sqlite-wal", "run.sqlite-shm"):
        (w.out / extra).unlink(missing_ok=True)
    return w.run(), w.out / "run.sqlite"


@case("not a readable t2i-bench store (unable to open database file)")
def database_is_a_folder(w: Work):
    shutil.copytree(w.out, w.root / "copy")
    (w.root / "copy" / "run.sqlite").unlink()
    (w.root / "copy" / "run.sqlite").mkdir()
    return w.run("--output", str(w.root / "copy")), w.root / "copy" / "run.sqlite"


@case("cannot read config file (Permission denied)")
def config_permission_denied(w: Work):
    return w.run(), w.config  # open() is patched in the test (root reads anything)


@case("disk full (No space left on device); everything written so far is kept", stage=True)
def disk_full(w: Work):
    return w.run(), w.out / "images"


@case("Not a directory", stage=True)
def images_folder_is_a_file(w: Work):
    return w.run(), w.out / "images"


@case("internal error: RuntimeError: boom; this is a bug in t2i-bench", code=3)
def internal_error(w: Work):
    return w.run(command="report"), "rerun with --debug"


@case("interrupted; everything written so far is kept", code=130)
def interrupted(w: Work):
    return w.run(command="report"), "run the same command to resume"


@case("out of device memory (CUDA out of memory")
def out_of_device_memory(w: Work):
    return w.run(command="report"), "backbones.batch_size"


# -- analysis and inspection -----------------------------------------------------------------
@case("--folds must be at least 2")
def analyze_one_fold(w: Work):
    args = ["analyze", "--table", str(w.out / "metrics.csv")]
    return [*args, "--configs", str(w.out / "checkpoints.csv"), "--folds", "1"], "--folds"


@case("column 'value' has a value that is not a finite number: 'inf' (data row 1)")
def analyze_infinite_value(w: Work):
    table = w.root / "m.csv"
    lines = (w.out / "metrics.csv").read_text().splitlines()
    head, first = lines[0], lines[1].split(",")
    first[5] = "inf"
    table.write_text("\n".join([head, ",".join(first), *lines[2:]]) + "\n")
    args = ["analyze", "--table", str(table), "--configs", str(w.out / "checkpoints.csv")]
    return args, table


@case("metrics table has no column 'value'")
def analyze_missing_column(w: Work):
    table = w.root / "m.csv"
    table.write_text("checkpoint,concept,category,prompt_type,metric\nbase,zyx,o,trigger,x\n")
    args = ["analyze", "--table", str(table), "--configs", str(w.out / "checkpoints.csv")]
    return args, table


@case("cannot read table")
def analyze_latin1_table(w: Work):
    table = w.root / "m.csv"
    table.write_bytes((w.out / "metrics.csv").read_bytes() + b"base,caf\xe9,x,trigger,m,1\n")
    args = ["analyze", "--table", str(table), "--configs", str(w.out / "checkpoints.csv")]
    return args, table


@case("column 'lr' has an infinite value (data row 2)")
def analyze_infinite_hyperparameter(w: Work):
    configs = w.root / "c.csv"
    configs.write_text("checkpoint,lr\nbase,\na,inf\n")
    return ["analyze", "--table", str(w.out / "metrics.csv"), "--configs", str(configs)], configs


@case("cannot analyse with --configs", stage=True)
def analyze_catboost_error(w: Work):
    args = ["analyze", "--table", str(w.out / "metrics.csv")]
    return [*args, "--configs", str(w.out / "checkpoints.csv")], w.out / "metrics.csv"


@case("unusable SQLite database (database disk image is malformed)")
def database_malformed_mid_run(w: Work):
    return w.run(command="report"), w.out / "run.sqlite"


@case("invalid regular expression '(?P<lr>[' (unterminated character set")
def inspect_invalid_pattern(w: Work):
    return ["inspect", str(w.root / "a.safetensors"), "--pattern", "(?P<lr>["], "(?P<lr>["


@case("zyx.yaml: trigger: Value error, trigger must not be empty")
def list_concepts_bad_concept(w: Work):
    folder = w.root / "concepts"
    folder.mkdir()
    (folder / "zyx.yaml").write_text(CONCEPT.replace("trigger: zyx", "trigger: ''"))
    return ["list", "concepts", str(folder)], folder / "zyx.yaml"


def _patch(name: str, monkeypatch, work: Work) -> None:
    """Faults that need a patch: the environment, not the input, is hostile."""
    if name == "config_permission_denied":
        import t2i_bench.files as files

        real_open = open

        def denied(path, *args, **kwargs):
            if Path(path) == work.config:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(files, "open", denied, raising=False)
    elif name in ("disk_full", "images_folder_is_a_file"):
        import errno

        from t2i_bench import store

        png = next((work.out / "images").rglob("*.png"))
        png.unlink()  # one image to render again
        if name == "disk_full":

            def full(path: Path, data: bytes) -> None:
                raise OSError(errno.ENOSPC, "No space left on device", str(work.out / "images"))

            monkeypatch.setattr(store, "atomic_write_bytes", full)
        else:
            shutil.rmtree(work.out / "images")
            (work.out / "images").write_text("not a folder")
    elif name == "analyze_catboost_error":
        import catboost

        from t2i_bench.analysis import analyze

        def fail_fit(*args, **kwargs):
            raise catboost.CatBoostError("quantization.cpp: all targets are equal")

        monkeypatch.setattr(analyze, "run_analysis", fail_fit)
    elif name in (
        "internal_error",
        "interrupted",
        "out_of_device_memory",
        "database_malformed_mid_run",
    ):
        from t2i_bench.report import build

        error = {
            "internal_error": RuntimeError("boom"),
            "interrupted": KeyboardInterrupt(),
            "out_of_device_memory": torch.OutOfMemoryError("CUDA out of memory. Tried 2 GiB"),
            "database_malformed_mid_run": sqlite3.DatabaseError("database disk image is malformed"),
        }[name]

        def fail(*args, **kwargs):
            raise error

        monkeypatch.setattr(build, "write_report", fail)


def test_there_are_at_least_50_cases() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name: str, work: Work, monkeypatch) -> None:
    fn, fragment, code, stage = CASES[name]
    argv, named = fn(work)
    before = work.snapshot()
    _patch(name, monkeypatch, work)
    if name in ("disk_full", "images_folder_is_a_file"):
        before = work.snapshot()  # one PNG was removed on purpose: its row goes too
        before["images"] -= 1
    result = CliRunner().invoke(app, argv)
    text = result.output.strip()
    assert "Traceback" not in result.output, text
    assert result.exit_code == code, text
    lines = text.splitlines()
    if stage:  # the stopped stage's progress bar, then the error
        assert all(not ln.startswith("error:") for ln in lines[:-1]), text
        lines = lines[-1:]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    assert str(named) in lines[0], (named, text)
    assert fragment in lines[0], text
    monkeypatch.undo()
    if name == "images_folder_is_a_file":
        return  # the images folder itself is what is broken
    assert work.snapshot() == before


def test_debug_shows_the_traceback(work: Work, monkeypatch) -> None:
    _patch("internal_error", monkeypatch, work)
    result = CliRunner().invoke(app, ["--debug", *work.run()])
    assert result.exit_code == 3
    assert "Traceback" in result.output and "RuntimeError: boom" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: internal error")


# -- cases that used to hang: a subprocess under a timeout ---------------------------------
def _subprocess(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    command = [sys.executable, "-m", "t2i_bench", *argv]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    return result, time.monotonic() - start


def _hang_fifo_checkpoint(w: Work):
    os.mkfifo(w.root / "pipe.safetensors")
    w.set("checkpoints", "[{path: pipe.safetensors}]")
    return w.root / "pipe.safetensors", "a FIFO (named pipe), not a checkpoint file or folder"


def _hang_device_checkpoint(w: Work):
    w.set("checkpoints", "[{path: /dev/zero}]")
    return "/dev/zero", "a character device, not a checkpoint file or folder"


def _hang_fifo_config(w: Work):
    w.config.unlink()
    os.mkfifo(w.config)
    return w.config, "a FIFO (named pipe), not a config file"


def _hang_fifo_reference(w: Work):
    os.mkfifo(w.root / "zyx" / "img_7.png")
    return w.root / "zyx" / "img_7.png", "a FIFO (named pipe), not a reference image file"


def _hang_alias_bomb(w: Work):
    """Anchors nested ten-fold nine times under a field that takes any value: a billion
    strings once expanded, in a 600-byte file."""
    values = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    values += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    w.set("checkpoints", "[{path: a.safetensors, hyperparameters: {" + ", ".join(values) + "}}]")
    return w.config, "YAML expands to more than 1,000,000 values through its aliases"


def _hang_billion_images(w: Work):
    w.set("images_per_prompt", "1000000000")
    return w.config, "images_per_prompt: 1,000,000,000 alone is over max_images"


def _hang_billion_checkpoint_rows(w: Work):
    w.set("max_images", "1000000000000")
    w.set("checkpoints", "[{path: a.safetensors, multipliers: [1, 2]}]")
    w.set("images_per_prompt", "100000000000")
    return w.config, "the plan has 1,500,000,000,000 images, over max_images"


HANGS = {
    "fifo_checkpoint": _hang_fifo_checkpoint,
    "device_checkpoint": _hang_device_checkpoint,
    "fifo_config": _hang_fifo_config,
    "fifo_reference_image": _hang_fifo_reference,
    "alias_bomb": _hang_alias_bomb,
    "billion_images_per_prompt": _hang_billion_images,
    "huge_plan": _hang_billion_checkpoint_rows,
}


@pytest.mark.parametrize("name", list(HANGS))
def test_former_hangs_finish_fast(name: str, work: Work) -> None:
    named, fragment = HANGS[name](work)
    before = work.snapshot()
    result, seconds = _subprocess(["run", str(work.config)])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert str(named) in lines[0] and fragment in lines[0], lines[0]
    assert seconds < 90  # Python and torch start-up included; it used to never end
    assert work.snapshot() == before

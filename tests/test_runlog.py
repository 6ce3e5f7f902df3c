"""Library warnings and logs go to the run's log file, not the console (unless --verbose)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from conftest import write_config
from typer.testing import CliRunner

from t2i_bench.cli import app
from t2i_bench.generation.pipeline import load_base_pipeline
from t2i_bench.runlog import RunLog

# transformers and diffusers add their console handler when first used, LyCORIS at import:
# in a fresh interpreter each is imported only after the log is active.
FRESH = """
import json, sys, warnings
from pathlib import Path
from t2i_bench.runlog import RunLog
log = Path(sys.argv[1])
with RunLog(log):
    from transformers.utils import logging as tl
    tl.get_logger("transformers.tokenization_utils_base").warning("TOKENIZER-WARNING")
    from diffusers.utils import logging as dl
    dl.get_logger("diffusers.pipelines").warning("DIFFUSERS-WARNING")
    import lycoris.logging
    lycoris.logging.logger.info("LYCORIS-INFO")
    warnings.warn("FUTURE-WARNING", FutureWarning)
print(json.dumps(log.read_text()))
"""


def test_libraries_imported_later_log_to_the_file_only(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", FRESH, str(log)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = json.loads(done.stdout.strip().splitlines()[-1])
    console = done.stdout.rsplit("\n", 2)[0] + done.stderr
    for marker in ("TOKENIZER-WARNING", "DIFFUSERS-WARNING", "LYCORIS-INFO", "FUTURE-WARNING"):
        assert marker in text, marker
        assert marker not in console.replace(json.dumps(text), ""), marker
    assert "FutureWarning" in text


def test_buffered_records_are_written_when_the_file_is_known(tmp_path: Path, capsys) -> None:
    before = list(logging.getLogger().handlers)
    with RunLog() as log:
        warnings.warn("BEFORE-THE-FILE", FutureWarning, stacklevel=1)
        log.to_file(tmp_path / "run.log")
        logging.getLogger("some.library").info("AFTER-THE-FILE")
    text = (tmp_path / "run.log").read_text()
    assert text.index("BEFORE-THE-FILE") < text.index("AFTER-THE-FILE")
    captured = capsys.readouterr()
    assert "BEFORE-THE-FILE" not in captured.err + captured.out
    assert logging.getLogger().handlers == before  # its handlers are removed on exit


def test_cli_run_keeps_the_console_clean_and_verbose_shows_the_log(concept_dir: Path) -> None:
    base = concept_dir / "base"  # a saved folder: diffusers' from_pretrained warns (torch_dtype)
    load_base_pipeline("tiny", seed=0).save_pretrained(base)
    config = write_config(concept_dir)
    config.write_text(config.read_text().replace("{source: tiny}", f"{{source: {base}}}"))
    runner = CliRunner()
    quiet = runner.invoke(app, ["generate", str(config)])
    assert quiet.exit_code == 0, quiet.output
    log = (concept_dir / "out" / "run.log").read_text()
    assert "FutureWarning" in log
    assert "Warning" not in quiet.output and "rendered 10 images" in quiet.output
    loud = runner.invoke(app, ["generate", str(config), "-o", str(concept_dir / "o2"), "-v"])
    assert loud.exit_code == 0, loud.output
    assert "FutureWarning" in loud.output
